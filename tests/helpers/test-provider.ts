import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FsError, type FsErrorCode } from '../../core/fs-error';
import { blake3Hex } from '../../cache/checksum';

/** Faults the source injects, consumed one fetch at a time. */
export interface SourceFaults {
  /** Every fetch waits this long first. */
  delayMs: number;
  /** The next N fetches throw FsError(failCode). */
  fail: number;
  failCode: FsErrorCode;
  /** The next N fetches throw a plain Error with this errno-style code (not an FsError). */
  throwPlain: number;
  plainCode: string;
  /** The next N fetches return the right length with one byte flipped. */
  corrupt: number;
}

export interface TestBlock {
  /** `${blobHash}:${index}`, the cache key for hashed content. */
  key: string;
  blobHash: string;
  index: number;
  /** BLAKE3 hex of the block, as the index stores it. */
  hash: string;
  data: Buffer;
}

/**
 * A real in-process source of blocks for cache tests: it holds blobs in memory, slices
 * them into blocks, and serves them through `fetcher()` with injectable faults (delay,
 * FsError failures, plain-Error failures, corrupt bytes). It is a fault injector for the
 * source, not a mock of the cache: the cache under test runs for real on a temp dir.
 */
export class TestBlockSource {
  readonly faults: SourceFaults = { delayMs: 0, fail: 0, failCode: 'EIO', throwPlain: 0, plainCode: 'ECONNRESET', corrupt: 0 };
  /** Fetches started, in total and per key. */
  fetches = 0;
  readonly fetchesByKey = new Map<string, number>();
  inFlight = 0;
  maxInFlight = 0;
  private readonly blocks = new Map<string, TestBlock>();

  constructor(readonly blockSize = 64 * 1024) {}

  /** Adds a blob of random content of `size` bytes; returns its blocks. */
  addRandomBlob(size: number): TestBlock[] {
    return this.addBlob(randomBytes(size));
  }

  /** Adds a blob; returns its blocks (the last one short). */
  addBlob(data: Buffer): TestBlock[] {
    const blobHash = blake3Hex(data);
    const out: TestBlock[] = [];
    for (let i = 0, off = 0; off < data.length; i++, off += this.blockSize) {
      const slice = Buffer.from(data.subarray(off, off + this.blockSize));
      const b: TestBlock = { key: `${blobHash}:${i}`, blobHash, index: i, hash: blake3Hex(slice), data: slice };
      this.blocks.set(b.key, b);
      out.push(b);
    }
    return out;
  }

  /** Fetches one block by key, applying the configured faults. Throws FsError ENOENT for an unknown key. */
  async fetch(key: string): Promise<Buffer> {
    this.fetches++;
    this.fetchesByKey.set(key, (this.fetchesByKey.get(key) ?? 0) + 1);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.faults.delayMs > 0) await new Promise((r) => setTimeout(r, this.faults.delayMs));
      if (this.faults.fail > 0) {
        this.faults.fail--;
        throw new FsError(this.faults.failCode, `test source: injected failure for ${key}`);
      }
      if (this.faults.throwPlain > 0) {
        this.faults.throwPlain--;
        throw Object.assign(new Error(`socket hang up (${key})`), { code: this.faults.plainCode });
      }
      const b = this.blocks.get(key);
      if (!b) throw new FsError('ENOENT', `test source: no block ${key}`);
      const data = Buffer.from(b.data); // a fresh copy, as a network read would give
      if (this.faults.corrupt > 0) {
        this.faults.corrupt--;
        data[data.length >> 1] ^= 0x01;
      }
      return data;
    } finally {
      this.inFlight--;
    }
  }

  /** The `fetch` callback BlockCache.get() takes. */
  fetcher(key: string): () => Promise<Buffer> {
    return () => this.fetch(key);
  }
}

/** Every regular file under `dir`, recursively (synchronous: a consistent snapshot for the event loop). */
export function filesUnder(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue; // removed while we walked
    }
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push({ path: p, size: st.size });
  }
  return out;
}

/**
 * Bytes of block data on disk in a cache dir, measured from the filesystem: block files
 * plus temp files of writes in flight (the SQLite index file is metadata and not counted).
 */
export function blockBytesOnDisk(cacheDir: string): number {
  let n = 0;
  for (const sub of ['blocks', 'tmp']) for (const f of filesUnder(join(cacheDir, sub))) n += f.size;
  return n;
}

/**
 * Bytes of the files under `dir` (recursively; `skip`: names left out) that are all there at one
 * moment: the files listed, each stat'ed again once the listing is over (one removed meanwhile
 * counts 0). A sum taken while listing is not a moment: a block evicted from one folder and the
 * block written after it, found later in another, add up to more than was ever on the disk.
 */
export function filesBytesAtOnce(dir: string, skip: (name: string) => boolean = () => false): number {
  const files = filesUnder(dir).filter((f) => !skip(basename(f.path)));
  let n = 0;
  for (const f of files) n += statSync(f.path, { throwIfNoEntry: false })?.size ?? 0;
  return n;
}
