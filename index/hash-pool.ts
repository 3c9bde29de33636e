import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FsError, toFsError } from '../core/fs-error';

export interface FileHash {
  hash: string;
  /** 32 bytes per block, concatenated. */
  blockHashes: Buffer;
  size: number;
  ino: bigint;
  mtimeNs: bigint;
  /** The file changed (size or mtime) while it was read: the hash may be of mixed content. */
  changed: boolean;
}

// Runs in each worker thread. Plain JS so the pool works the same from dist/ and from
// TypeScript sources under the test runner. Reads block by block with blocking calls:
// that is what a worker thread is for, and it keeps both cores busy on large trees.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { Blake3Hasher } = require(workerData.blake);
let buf = Buffer.allocUnsafe(0);
const whole = new Blake3Hasher();
const block = new Blake3Hasher();
parentPort.on('message', ({ id, path, blockSize }) => {
  let fd;
  try {
    if (buf.length !== blockSize) buf = Buffer.allocUnsafe(blockSize);
    // O_NOATIME: hashing after close must not change the times the writer set (EPERM when
    // neither owner nor root: then plain).
    try {
      fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | (fs.constants.O_NOATIME || 0));
    } catch (e) {
      if (e.code !== 'EPERM') throw e;
      fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    }
    const before = fs.fstatSync(fd, { bigint: true });
    if (!before.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
    whole.reset();
    const blocks = [];
    let size = 0;
    let hex;
    for (;;) {
      let n = 0;
      while (n < blockSize) {
        const r = fs.readSync(fd, buf, n, blockSize - n, size + n);
        if (r === 0) break;
        n += r;
      }
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      if (size === 0 && n < blockSize) {
        // A single-block file: its block hash is its hash; hashing it twice would double
        // the cost of the thousands of small files in a typical tree.
        whole.update(chunk);
        const d = whole.digestBuffer();
        blocks.push(d);
        hex = d.toString('hex');
        size = n;
        break;
      }
      whole.update(chunk);
      block.reset();
      block.update(chunk);
      blocks.push(block.digestBuffer());
      size += n;
      if (n < blockSize) break;
    }
    const after = fs.fstatSync(fd, { bigint: true });
    const changed = after.size !== before.size || after.mtimeNs !== before.mtimeNs || BigInt(size) !== after.size;
    const blockHashes = Buffer.concat(blocks);
    parentPort.postMessage({ id, hash: hex ?? whole.digest('hex'), blockHashes, size, ino: after.ino, mtimeNs: after.mtimeNs, changed });
  } catch (err) {
    parentPort.postMessage({ id, error: { code: err.code, message: err.message } });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
});
`;

interface Job {
  id: number;
  path: string;
  blockSize: number;
  resolve: (h: FileHash) => void;
  reject: (e: FsError) => void;
}

/** Jobs queued in each worker at once, so a worker never waits for the main thread to hand it the next file. */
const DEPTH = 4;

/**
 * Hashes whole files (BLAKE3-256, identical to b3sum) and their per-block hashes in one
 * pass, on worker threads started on first use. hashFile throws FsError (ENOENT, EACCES,
 * EINVAL, EIO).
 */
export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly queue: Job[] = [];
  /** Jobs sent to each worker and not answered yet, oldest first (a worker answers in order). */
  private readonly inflight = new Map<Worker, Job[]>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly size = Math.max(1, availableParallelism())) {}

  private start(): void {
    const blake = require.resolve('@napi-rs/blake-hash');
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { blake } });
      w.unref();
      w.on('message', (msg: { id: number; error?: { code?: string; message: string } } & FileHash) => this.done(w, msg));
      w.on('error', (err) => this.crashed(w, err));
      this.workers.push(w);
      this.inflight.set(w, []);
    }
  }

  hashFile(path: string, blockSize: number): Promise<FileHash> {
    if (this.closed) return Promise.reject(new FsError('EIO', 'hash pool is closed'));
    if (this.workers.length === 0) this.start();
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, path, blockSize, resolve, reject });
      this.pump();
    });
  }

  get pending(): number {
    let n = this.queue.length;
    for (const q of this.inflight.values()) n += q.length;
    return n;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let best: Worker | undefined;
      for (const w of this.workers) {
        const n = this.inflight.get(w)!.length;
        if (n < DEPTH && (!best || n < this.inflight.get(best)!.length)) best = w;
      }
      if (!best) return;
      const job = this.queue.shift()!;
      const q = this.inflight.get(best)!;
      if (q.length === 0) best.ref();
      q.push(job);
      best.postMessage({ id: job.id, path: job.path, blockSize: job.blockSize });
    }
  }

  private done(w: Worker, msg: { id: number; error?: { code?: string; message: string } } & FileHash): void {
    const q = this.inflight.get(w)!;
    const i = q.findIndex((j) => j.id === msg.id);
    const job = i >= 0 ? q.splice(i, 1)[0] : undefined;
    if (q.length === 0) w.unref();
    if (job) {
      if (msg.error) job.reject(toFsError(Object.assign(new Error(msg.error.message), { code: msg.error.code }), `hash ${job.path}`));
      else job.resolve({ ...msg, blockHashes: Buffer.from(msg.blockHashes) });
    }
    this.pump();
  }

  private crashed(w: Worker, err: Error): void {
    for (const job of this.inflight.get(w) ?? []) job.reject(new FsError('EIO', `hash worker failed: ${err.message}`, err));
    this.inflight.delete(w);
    // A crashed worker is not reused; the pool keeps going with the others.
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    if (this.workers.length === 0) {
      for (const j of this.queue.splice(0)) j.reject(new FsError('EIO', 'all hash workers failed'));
    } else this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new FsError('EIO', 'hash pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
