import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FsError, toFsError } from '../core/fs-error';

/** Type codes of `DirListing.types`. */
export const T_GONE = 0, T_FILE = 1, T_DIR = 2, T_SYMLINK = 3, T_OTHER = 4, T_ERROR = 5, T_FIFO = 6, T_SOCKET = 7, T_CHARDEV = 8, T_BLOCKDEV = 9;

/** One directory as the walker saw it: names, and per name what `lstat` said. */
export interface DirListing {
  names: string[];
  types: Uint8Array;
  /** `ino:size:mtimeNs`, the local version token (providers/local localVersion). */
  versions: string[];
  modes: Int32Array;
  sizes: Float64Array;
  mtimeSec: Float64Array;
  mtimeNsec: Int32Array;
  /** st_rdev of device nodes (0 for everything else). */
  rdevs: Float64Array;
  /** For T_ERROR names: [index, message]. */
  errors: [number, string][];
}

// readdir + lstat of one directory per message, in a worker thread. Plain JS (see hash-pool.ts).
// The lstat calls are most of a rescan's time, and are synchronous system calls: two threads
// run them on two cores, while the main thread compares and writes the index.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', ({ id, dir, ino }) => {
  // Below the root, the directory is opened without following a symlink and must be the one
  // its parent's listing saw (same inode): a directory swapped for a link to somewhere else
  // during the scan is never listed. Its entries are then read through the open fd.
  let names, fd;
  try {
    const C = fs.constants;
    fd = fs.openSync(dir, C.O_RDONLY | C.O_DIRECTORY | (ino === undefined ? 0 : C.O_NOFOLLOW));
    if (ino !== undefined && String(fs.fstatSync(fd, { bigint: true }).ino) !== ino)
      throw Object.assign(new Error('replaced by another directory or a symlink while being scanned; not followed'), { code: 'ENOTDIR' });
    names = fs.readdirSync('/proc/self/fd/' + fd);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    parentPort.postMessage({ id, error: { code: err.code === 'ELOOP' ? 'ENOTDIR' : err.code, message: err.message } });
    return;
  }
  const n = names.length;
  const types = new Uint8Array(n), modes = new Int32Array(n), sizes = new Float64Array(n), mtimeSec = new Float64Array(n), mtimeNsec = new Int32Array(n), rdevs = new Float64Array(n);
  const versions = new Array(n).fill('');
  const errors = [];
  const prefix = '/proc/self/fd/' + fd + '/';
  for (let i = 0; i < n; i++) {
    let st;
    try {
      st = fs.lstatSync(prefix + names[i], { bigint: true, throwIfNoEntry: false });
    } catch (err) {
      types[i] = ${T_ERROR};
      errors.push([i, err.message]);
      continue;
    }
    if (!st) { types[i] = ${T_GONE}; continue; }
    types[i] = st.isFile() ? ${T_FILE} : st.isDirectory() ? ${T_DIR} : st.isSymbolicLink() ? ${T_SYMLINK} : st.isFIFO() ? ${T_FIFO}
      : st.isSocket() ? ${T_SOCKET} : st.isCharacterDevice() ? ${T_CHARDEV} : st.isBlockDevice() ? ${T_BLOCKDEV} : ${T_OTHER};
    if (types[i] === ${T_CHARDEV} || types[i] === ${T_BLOCKDEV}) rdevs[i] = Number(st.rdev);
    versions[i] = st.ino + ':' + st.size + ':' + st.mtimeNs;
    modes[i] = Number(st.mode) & 0o7777;
    sizes[i] = Number(st.size);
    mtimeSec[i] = Number(st.mtimeNs / 1000000000n);
    mtimeNsec[i] = Number(st.mtimeNs % 1000000000n);
  }
  fs.closeSync(fd);
  parentPort.postMessage({ id, listing: { names, types, versions, modes, sizes, mtimeSec, mtimeNsec, rdevs, errors } });
});
`;

interface Job { id: number; dir: string; ino?: string; resolve: (l: DirListing) => void; reject: (e: FsError) => void }

const DEPTH = 2;

/**
 * Lists directories (readdir + lstat of every name, never following symlinks) on worker
 * threads. `list` throws FsError (ENOENT, EACCES, ENOTDIR, EIO) when the directory itself
 * cannot be read; problems with single names come back as T_ERROR.
 */
export class WalkPool {
  private readonly workers: Worker[] = [];
  private readonly inflight = new Map<Worker, Job[]>();
  private readonly queue: Job[] = [];
  private nextId = 1;

  constructor(private readonly size = Math.max(1, availableParallelism())) {}

  /**
   * `ino`: the inode the parent's listing saw for `dir` (all but the root); then `dir` is not
   * followed if it is a symlink, and must still be that directory (else ENOTDIR).
   */
  list(dir: string, ino?: string): Promise<DirListing> {
    if (this.workers.length === 0) this.start();
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, dir, ino, resolve, reject });
      this.pump();
    });
  }

  private start(): void {
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', (m: { id: number; error?: { code?: string; message: string }; listing?: DirListing }) => this.done(w, m));
      w.on('error', (err) => {
        for (const j of this.inflight.get(w) ?? []) j.reject(new FsError('EIO', `walk worker failed: ${err.message}`, err));
        this.inflight.delete(w);
        this.workers.splice(this.workers.indexOf(w), 1);
        if (this.workers.length === 0) for (const j of this.queue.splice(0)) j.reject(new FsError('EIO', 'all walk workers failed'));
        else this.pump();
      });
      this.workers.push(w);
      this.inflight.set(w, []);
    }
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let best: Worker | undefined;
      for (const w of this.workers) {
        const n = this.inflight.get(w)!.length;
        if (n < DEPTH && (!best || n < this.inflight.get(best)!.length)) best = w;
      }
      if (!best) return;
      // Last in, first out: depth-first keeps the queue (and memory) small on wide trees.
      const job = this.queue.pop()!;
      this.inflight.get(best)!.push(job);
      best.postMessage({ id: job.id, dir: job.dir, ino: job.ino });
    }
  }

  private done(w: Worker, m: { id: number; error?: { code?: string; message: string }; listing?: DirListing }): void {
    const q = this.inflight.get(w)!;
    const i = q.findIndex((j) => j.id === m.id);
    const job = i >= 0 ? q.splice(i, 1)[0] : undefined;
    if (job) {
      if (m.error) job.reject(toFsError(Object.assign(new Error(m.error.message), { code: m.error.code }), 'readdir'));
      else job.resolve(m.listing!);
    }
    this.pump();
  }

  async close(): Promise<void> {
    for (const j of this.queue.splice(0)) j.reject(new FsError('EIO', 'walk pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
