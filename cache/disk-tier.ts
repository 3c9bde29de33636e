import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { ensurePrivateDir, removeTree } from '../core/private-files';
import { readFullyInto } from '../core/read-fully';
import { join } from 'node:path';
import { toFsError } from '../core/fs-error';
import { errnoName, loadNativeFuse, type NativeFuse } from '../core/native-addon';
import { AsyncLock } from './async-lock';
import type { CacheIndex, IndexRow, OpenCacheIndex } from './cache-index';
import { blockPool } from './block-pool';
import { blake3Hex } from './checksum';
import type { MemoryBlock } from './memory-tier';

interface DiskEntry {
  file: string;
  size: number;
  sum: string;
  used: number;
}

/** Counters kept by the disk tier, read by BlockCache.stats(). */
export interface DiskTierCounters {
  evictions: number;
  corruptDropped: number;
  writeErrors: number;
  indexErrors: number;
}

const FLUSH_MS = 1000;
const FLUSH_CHUNK = 500;

/** A block's file name: BLAKE3 of the key, so any key (paths, colons) maps to a safe name. */
function fileNameOf(key: string): string {
  return blake3Hex(Buffer.from(key, 'utf8'));
}

/**
 * Whole block files in one libuv pool task each (the native addon's readFileInto and
 * writeNewFile), where fs/promises took three or four round trips through the pool per block;
 * without the addon, fs/promises.
 */
const addon = loadNativeFuse().addon;
const nativeIo = addon?.readFileInto && addon.writeNewFile ? (addon as Required<Pick<NativeFuse, 'readFileInto' | 'writeNewFile'>>) : undefined;

/**
 * Up to `size` bytes of `path` (fewer: the file is short), or undefined when it cannot be
 * opened or read. With `pooled`, in a buffer of the block pool (one reference, the caller's).
 * Bytes past `size` are never served, so the file is not checked for them.
 */
async function readBlockFile(path: string, size: number, pooled: boolean): Promise<Buffer | undefined> {
  const slot = blockPool.slab_.blockSize;
  const buf = pooled && size > 0 && size <= slot ? blockPool.take(size, slot) : Buffer.allocUnsafe(size);
  let fh: FileHandle | undefined;
  let got = -1;
  try {
    if (nativeIo) got = await nativeIo.readFileInto(path, buf, size);
    else {
      fh = await open(path, 'r');
      got = await readFullyInto(fh, buf, 0);
    }
  } catch {
    /* unreadable: a miss */
  } finally {
    await fh?.close().catch(() => undefined);
  }
  if (got >= 0) return got === size ? buf : buf.subarray(0, got);
  blockPool.unref(buf);
  return undefined;
}

/** Creates `path` (never through a link, never over an existing file) holding `data`, 0600. Throws with the errno's code. */
async function writeNewFile(path: string, data: Buffer): Promise<void> {
  if (!nativeIo) return writeFile(path, data, { mode: 0o600, flag: 'wx' });
  const rc = await nativeIo.writeNewFile(path, data, 0o600);
  if (rc < 0) throw Object.assign(new Error(`${errnoName(rc)}: ${path}`), { code: errnoName(rc) });
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The disk tier: block files under `dir/blocks/<2 hex>/<64 hex>` (256-way fan-out),
 * written in place (O_EXCL). A rename from a temp dir about doubled the CPU of storing a
 * block (100 KiB blocks: ~0.15-0.3 ms more each, on a daemon whose small S3 files cost ~2 ms)
 * and is not needed: a block is known (in `entries`, then in the index) only once its file is
 * complete, a crash mid-write leaves a file the index does not list, which `open` deletes,
 * and every read checks length and BLAKE3 (verifiedFile: once per run). Space is allocated
 * (under a lock) before a block is written, evicting least-recently-used blocks first, so the bytes of block files on disk never
 * exceed `maxBytes`. Recency lives in a JS Map (insertion order = LRU order, O(1) touch)
 * and is persisted in batches to `CacheIndex` every second and on close.
 *
 * `read` and `store` never throw for I/O trouble: a block that cannot be read or verified
 * is dropped and reported as absent, a block that cannot be written is not cached.
 * `open`, `clear` and `close` throw FsError (EIO, EACCES, ENOSPC...) when the directory
 * itself is unusable.
 */
export class DiskTier {
  readonly counters: DiskTierCounters = { evictions: 0, corruptDropped: 0, writeErrors: 0, indexErrors: 0 };
  private entries = new Map<string, DiskEntry>();
  private readonly dirty = new Set<string>();
  private readonly madeDirs = new Set<string>();
  private readonly writing = new Map<string, Promise<boolean>>();
  private readonly unlinking = new Map<string, Promise<void>>();
  /** Blocks whose file was written or read back and checked during this run (see verifiedFile). */
  private readonly verified = new Set<string>();
  private readonly removedListeners: ((file: string) => void)[] = [];
  private readonly lock = new AsyncLock();
  private readonly timer: NodeJS.Timeout;
  private bytesOnDisk = 0;
  private reserved = 0;
  private seq = 0;
  private generation = 0;
  private closed = false;
  private indexClosed = false;

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
    private readonly index: CacheIndex,
  ) {
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  private get blocksDir(): string {
    return join(this.dir, 'blocks');
  }

  private pathOf(file: string): string {
    return join(this.blocksDir, file.slice(0, 2), file);
  }

  /**
   * Opens (creating) the tier in `dir`: loads the index, deletes leftover temp files and
   * block files the index does not know (a crash before the index listed them), forgets
   * rows whose file is gone, and evicts down to `maxBytes` if the limit was lowered.
   * Throws FsError when `dir` cannot be created or read.
   */
  static async open(dir: string, maxBytes: number, openIndex: OpenCacheIndex): Promise<DiskTier> {
    try {
      // A cache dir in a shared place: refused unless it is ours, and made 0700 so nobody else
      // can plant links in it. Removal never follows a link either way.
      ensurePrivateDir(dir);
      // leftovers of a crash: the trash of an unfinished clear(), temp files of earlier versions
      for (const name of await readdir(dir)) {
        if (name === 'tmp' || name.startsWith('trash-')) await removeTree(join(dir, name));
      }
      await mkdir(join(dir, 'blocks'), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw toFsError(err, `cache dir ${dir}`);
    }
    const tier = new DiskTier(dir, maxBytes, openIndex(join(dir, 'index.db')));
    try {
      await tier.load();
    } catch (err) {
      await tier.close();
      throw toFsError(err, `cache dir ${dir}`);
    }
    return tier;
  }

  private async load(): Promise<void> {
    const rows = this.index.load();
    const byFile = new Map<string, IndexRow>();
    for (const r of rows) byFile.set(r.file, r);
    const present = new Set<string>();
    const subdirs = await readdir(this.blocksDir, { withFileTypes: true });
    await Promise.all(
      subdirs.map(async (d) => {
        const sub = d.name;
        if (!d.isDirectory() || !/^[0-9a-f]{2}$/.test(sub)) {
          await removeTree(join(this.blocksDir, sub)); // not ours
          return;
        }
        const names = await readdir(join(this.blocksDir, sub)).catch(() => [] as string[]);
        this.madeDirs.add(sub);
        for (const name of names) {
          const row = byFile.get(name);
          if (row && name.slice(0, 2) === sub) present.add(name);
          else await removeTree(join(this.blocksDir, sub, name));
        }
      }),
    );
    await this.makeSubdirs();
    for (const r of rows) {
      if (present.has(r.file) && r.file === fileNameOf(r.key)) {
        this.entries.set(r.key, { file: r.file, size: r.size, sum: r.sum, used: r.used });
        this.bytesOnDisk += r.size;
        this.seq = Math.max(this.seq, r.used);
      } else {
        this.dirty.add(r.key);
      }
    }
    await this.lock.run(async () => {
      while (this.bytesOnDisk > this.maxBytes && (await this.evictOldest()));
    });
    this.flush(Infinity);
  }

  /**
   * The 256 sub-folders block files go in, made up front: made on first use they cost a mkdir
   * on the streaming path of the first 256 blocks after a clear (~3 % of a cold read's CPU).
   * One that cannot be made now is made by its first write (doStore).
   */
  private async makeSubdirs(): Promise<void> {
    const missing = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0')).filter((d) => !this.madeDirs.has(d));
    await Promise.all(
      missing.map((sub) =>
        mkdir(join(this.blocksDir, sub), { mode: 0o700 }).then(
          () => this.madeDirs.add(sub),
          (err) => (errCode(err) === 'EEXIST' ? this.madeDirs.add(sub) : undefined),
        ),
      ),
    );
  }

  /** Bytes of block files on disk (committed, or being deleted) plus space reserved for writes. */
  get bytes(): number {
    return this.bytesOnDisk + this.reserved;
  }

  get count(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /**
   * The file of block `key` when it was written, or read back and verified, during this run,
   * and is still cached; else undefined. A front end may read it directly (FUSE answers reads
   * of it natively) instead of calling read(), which verifies every time. The file stays
   * until evicted (unlinked: a reader that opened it keeps the right bytes; a later open fails).
   */
  /**
   * Calls `fn` with a block file's path before the file is deleted (evicted, dropped, cleared),
   * synchronously: whoever reads verified files directly stops using that one first.
   */
  onRemoved(fn: (file: string) => void): void {
    this.removedListeners.push(fn);
  }

  private removing(file: string): void {
    for (const fn of this.removedListeners) {
      try {
        fn(this.pathOf(file));
      } catch {
        /* a listener's failure is not the cache's */
      }
    }
  }

  verifiedFile(key: string): string | undefined {
    const e = this.verified.has(key) ? this.entries.get(key) : undefined;
    return e ? this.pathOf(e.file) : undefined;
  }

  /** Keys from least to most recently used (for tests and `vdfs cache stats`). */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Marks `key` as just used. Never throws. */
  touch(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    e.used = ++this.seq;
    this.entries.set(key, e);
    this.dirty.add(key);
  }

  /**
   * Reads a block back and verifies it (length, stored BLAKE3, and `expectedHash` when
   * given). A missing, truncated or corrupt file is dropped and `undefined` returned, so
   * the caller refetches. `pooled`: into a buffer of the block pool whose one reference is the
   * caller's (BlockCache.take). Never throws.
   */
  async read(key: string, expectedHash?: string, pooled = false): Promise<MemoryBlock | undefined> {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (expectedHash !== undefined && e.sum !== expectedHash) {
      this.counters.corruptDropped++;
      await this.remove(key, e);
      return undefined;
    }
    const data = await readBlockFile(this.pathOf(e.file), e.size, pooled);
    // Gone (evicted meanwhile, or deleted behind our back) or unreadable: a miss either way.
    if (!data) {
      await this.remove(key, e);
      return undefined;
    }
    if (data.length !== e.size || blake3Hex(data) !== e.sum) {
      blockPool.unref(data);
      this.counters.corruptDropped++;
      await this.remove(key, e);
      return undefined;
    }
    this.touch(key);
    this.verified.add(key);
    return { data, sum: e.sum };
  }

  /**
   * Stores a block whose BLAKE3 hex is `sum` (computed by the caller). Returns whether it
   * is now on disk. A block larger than `maxBytes`, or one that finds every byte reserved
   * by other writes in flight, is not stored. Write errors are counted, not thrown.
   */
  store(key: string, data: Buffer, sum: string): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const e = this.entries.get(key);
    if (e && e.sum === sum) {
      this.touch(key);
      return Promise.resolve(true);
    }
    const pending = this.writing.get(key);
    if (pending) return pending;
    const p = this.doStore(key, data, sum).finally(() => this.writing.delete(key));
    this.writing.set(key, p);
    return p;
  }

  private async doStore(key: string, data: Buffer, sum: string): Promise<boolean> {
    // Test hook: a slow cache disk (tests/s3-stream.test.ts). Never set outside tests.
    const delay = Number(process.env.VDFS_TEST_CACHE_WRITE_DELAY_MS ?? 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const gen = this.generation;
    const old = this.entries.get(key);
    if (old) await this.remove(key, old); // same key, other content: replace
    const n = data.length;
    if (!(await this.allocate(n))) return false;
    const file = fileNameOf(key);
    const sub = file.slice(0, 2);
    const path = this.pathOf(file);
    let created = false;
    try {
      if (!this.madeDirs.has(sub)) {
        await mkdir(join(this.blocksDir, sub), { recursive: true, mode: 0o700 });
        this.madeDirs.add(sub);
      }
      await this.unlinking.get(file);
      if (gen !== this.generation || this.closed) return false;
      created = await this.createFile(path, data);
      if (gen !== this.generation || this.entries.has(key)) {
        // cleared meanwhile (or a racing put won): our file must not stay unaccounted
        if (gen !== this.generation) await unlink(path).catch(() => undefined);
        created = false;
        return gen === this.generation;
      }
      this.entries.set(key, { file, size: n, sum, used: ++this.seq });
      this.bytesOnDisk += n;
      this.dirty.add(key);
      this.verified.add(key);
      return true;
    } catch {
      this.counters.writeErrors++;
      if (created) await unlink(path).catch(() => undefined);
      return false;
    } finally {
      // a file that did not make it is gone before its reservation is released, so the limit holds on disk
      this.reserved -= n;
    }
  }

  /**
   * Writes a new block file in place (O_EXCL: never through a link, never over a file in use).
   * A file already there is a stray (a write that failed and could not be unlinked): removed,
   * then written once more. Resolves true; a partial file is unlinked before the error is thrown.
   */
  private async createFile(path: string, data: Buffer): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await writeNewFile(path, data);
        return true;
      } catch (err) {
        if (errCode(err) === 'EEXIST' && attempt === 0) {
          await unlink(path).catch(() => undefined);
          continue;
        }
        if (errCode(err) !== 'EEXIST') await unlink(path).catch(() => undefined);
        throw err;
      }
    }
  }

  /** Reserves `n` bytes, evicting LRU blocks until they fit. False when they cannot. */
  private allocate(n: number): Promise<boolean> {
    return this.lock.run(async () => {
      if (n > this.maxBytes) return false;
      while (this.bytesOnDisk + this.reserved + n > this.maxBytes) {
        if (!(await this.evictOldest())) return false;
      }
      this.reserved += n;
      return true;
    });
  }

  private async evictOldest(): Promise<boolean> {
    const first = this.entries.entries().next();
    if (first.done) return false;
    const [key, e] = first.value;
    this.counters.evictions++;
    await this.remove(key, e);
    return true;
  }

  /**
   * Forgets `e` and deletes its file; its bytes count as used until the unlink is done,
   * so allocation never relies on space not yet freed.
   */
  private async remove(key: string, e: DiskEntry): Promise<void> {
    if (this.entries.get(key) !== e) return;
    this.entries.delete(key);
    if (this.verified.delete(key)) this.removing(e.file);
    this.dirty.add(key);
    const gen = this.generation;
    const p = (async () => {
      try {
        await unlink(this.pathOf(e.file));
      } catch (err) {
        // Not freed (EACCES, EBUSY...): keep counting it; reopening reconciles.
        if (errCode(err) !== 'ENOENT') return;
      }
      if (gen === this.generation) this.bytesOnDisk -= e.size;
    })();
    this.unlinking.set(e.file, p);
    try {
      await p;
    } finally {
      if (this.unlinking.get(e.file) === p) this.unlinking.delete(e.file);
    }
  }

  /**
   * Writes pending recency/insert/delete changes to the index, at most `chunk` rows per
   * synchronous SQLite transaction (~3.4 µs a row here), continuing on a later turn of the
   * event loop so a big batch never stalls FUSE for long. Never throws (counts errors).
   */
  flush(chunk = FLUSH_CHUNK): void {
    if (this.dirty.size === 0 || this.indexClosed) return;
    const upserts: IndexRow[] = [];
    const deletes: string[] = [];
    const taken: string[] = [];
    for (const key of this.dirty) {
      if (taken.length >= chunk) break;
      taken.push(key);
      const e = this.entries.get(key);
      if (e) upserts.push({ key, ...e });
      else deletes.push(key);
    }
    try {
      this.index.apply(upserts, deletes);
      for (const k of taken) this.dirty.delete(k);
    } catch {
      this.counters.indexErrors++; // kept dirty: retried on the next flush
      return;
    }
    if (this.dirty.size > 0 && !this.closed) setImmediate(() => this.flush());
  }

  /** Removes every block and index row. Throws FsError when the directory cannot be reset. */
  clear(): Promise<void> {
    return this.lock.run(async () => {
      this.generation++;
      for (const key of this.verified) {
        const e = this.entries.get(key);
        if (e) this.removing(e.file);
      }
      this.entries = new Map();
      this.verified.clear();
      this.dirty.clear();
      this.madeDirs.clear();
      const trash = join(this.dir, `trash-${randomBytes(6).toString('hex')}`);
      try {
        this.index.clear();
        await rename(this.blocksDir, trash);
        await mkdir(this.blocksDir, { recursive: true, mode: 0o700 });
        await this.makeSubdirs();
        await removeTree(trash);
      } catch (err) {
        throw toFsError(err, `clear cache ${this.dir}`);
      }
      this.bytesOnDisk = 0;
    });
  }

  /** Waits for writes in flight, persists recency and closes the index. Never throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.writing.values()]);
    await this.lock.run(async () => undefined);
    this.flush(Infinity);
    this.indexClosed = true;
    this.index.close();
  }
}
