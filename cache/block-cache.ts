import { FsError, toFsError } from '../core/fs-error';
import type { OpenCacheIndex } from './cache-index';
import { blake3Hex } from './checksum';
import { blockPool } from './block-pool';
import { DiskTier } from './disk-tier';
import { MemoryTier, type MemoryBlock } from './memory-tier';
import { SingleFlight } from './single-flight';

/** Where and how big. */
export interface BlockCacheOptions {
  /** Directory holding the cache (`home.cacheDir`); created when missing. */
  dir: string;
  /** Hard limit for block files on disk (`cache.maxSize`). 0 disables the disk tier's storage. */
  maxBytes: number;
  /** Budget of the in-memory tier (`cache.memorySize`). 0 disables it. */
  memoryBytes: number;
  /**
   * Write-behind: when > 0, a fetched block is handed to the caller as soon as it is verified
   * and written to disk in the background, with at most this many bytes queued; a block that
   * finds the queue full is not stored (counted in `writeSkips`), so a slow cache disk never
   * slows a reader. 0 (the default): get() resolves once the block is on disk.
   */
  writeQueueBytes?: number;
  /** Opens the cache's persistent index (`index/cache-store.ts openCacheStore`; the cache speaks no SQL). */
  openIndex: OpenCacheIndex;
}

/** A cheap snapshot of the cache's counters. Never throws. */
export interface BlockCacheStats {
  /** Bytes of block files on disk, including space reserved for writes in flight. */
  bytes: number;
  /** Blocks on disk. */
  blocks: number;
  maxBytes: number;
  /** The configured memory budget. */
  memoryBytes: number;
  /** Bytes held by the memory tier now. */
  memoryUsed: number;
  memoryBlocks: number;
  /** Lookups served from memory or disk (get() only; peek() does not count). */
  hits: number;
  /** Of those, served from memory. */
  memoryHits: number;
  /** Lookups that had to fetch (= fetches started). */
  misses: number;
  /** get() calls that joined a lookup already in flight for the same key (single-flight). */
  shared: number;
  fetchedBytes: number;
  evictions: number;
  /** Blocks on disk found missing their expected hash, truncated or corrupt, and dropped. */
  corruptDropped: number;
  /** Fetched blocks that did not match their expected hash (returned as EIO, not cached). */
  verifyFailures: number;
  /** Blocks that could not be written to disk (returned anyway, not cached). */
  writeErrors: number;
  /** Keys being looked up or fetched now. */
  inflight: number;
  /** Bytes waiting in the write-behind queue now. */
  writeQueued: number;
  /** Fetched blocks not stored because the write-behind queue was full. */
  writeSkips: number;
}

/**
 * The block cache: a memory LRU in front of a bounded, persistent disk LRU, with
 * single-flight fetching and BLAKE3 verification. See docs/cache.md.
 *
 * Buffers returned by get()/peek() may be shared with the memory tier and with other
 * callers: treat them as read-only (copy before modifying).
 */
export class BlockCache {
  private readonly flight = new SingleFlight<MemoryBlock>();
  private readonly counts = { hits: 0, memoryHits: 0, misses: 0, shared: 0, fetchedBytes: 0, verifyFailures: 0, writeSkips: 0 };
  private readonly behind = new Set<Promise<unknown>>();
  /** Blocks in the write-behind queue, served from here until they are on disk (a reader must not fetch them again meanwhile). */
  private readonly writing = new Map<string, MemoryBlock>();
  /** check() reads in flight: a take() of the same block waits for it, then finds the file in the page cache. */
  private readonly checking = new Map<string, Promise<boolean>>();
  private queuedBytes = 0;
  private closed = false;

  private constructor(
    private readonly opts: BlockCacheOptions,
    private readonly memory: MemoryTier,
    private readonly disk: DiskTier,
  ) {}

  /**
   * Opens the cache in `opts.dir`, knowing at once every block cached by an earlier run and
   * its recency. Throws FsError EINVAL for bad options, or the FsError of the directory
   * (EACCES, ENOSPC, EIO...) when it cannot be used.
   */
  static async open(opts: BlockCacheOptions): Promise<BlockCache> {
    for (const k of ['maxBytes', 'memoryBytes'] as const) {
      if (!Number.isSafeInteger(opts[k]) || opts[k] < 0) throw new FsError('EINVAL', `cache ${k} must be a whole number of bytes >= 0, got ${opts[k]}`);
    }
    if (!opts.dir) throw new FsError('EINVAL', 'cache dir is empty');
    const disk = await DiskTier.open(opts.dir, opts.maxBytes, opts.openIndex);
    return new BlockCache({ ...opts }, new MemoryTier(opts.memoryBytes), disk);
  }

  /**
   * The block under `key`, from memory, else from disk (verified), else from `fetch`
   * (verified against `expectedHash` when given, then cached). Concurrent calls for one key
   * share one lookup and one fetch.
   *
   * key: `${hash}:${blockIndex}` for hashed content, or any other string (e.g.
   * `v:${location}:${path}:${version}:${index}`) for content not hashed yet.
   *
   * Throws FsError: the fetch's error (non-FsErrors wrapped by `toFsError`, so a reset
   * becomes EIO, a refused connection EHOSTDOWN); EIO when the fetched block does not match
   * `expectedHash` (nothing is cached); EIO when the cache is closed. A failure is not
   * remembered: the next get() fetches again. Cache-side disk trouble never fails a get().
   */
  async get(key: string, fetch: () => Promise<Buffer>, expectedHash?: string): Promise<Buffer> {
    if (this.closed) throw new FsError('EIO', 'block cache is closed');
    const m = this.memoryHit(key, expectedHash);
    if (m) {
      this.counts.hits++;
      this.counts.memoryHits++;
      return m.data;
    }
    return this.lookup(key, fetch, expectedHash, true);
  }

  /** The single-flight lookup behind get() and take(): disk, else fetch; `remember`: the block then goes to the memory tier. */
  private async lookup(key: string, fetch: () => Promise<Buffer>, expectedHash: string | undefined, remember: boolean): Promise<Buffer> {
    if (this.flight.has(key)) this.counts.shared++;
    const b = await this.flight.run(key, () => this.load(key, fetch, expectedHash, remember));
    if (expectedHash !== undefined && b.sum !== expectedHash) {
      // joined a lookup made with another expectation: never hand out unverified bytes
      throw new FsError('EIO', `block ${key}: content hash ${b.sum} is not the expected ${expectedHash}`);
    }
    return b.data;
  }

  /**
   * get() for a caller that gives the block back: when the buffer returned is pooled
   * (cache/block-pool.ts), one reference to it is the caller's, returned with blockPool.unref
   * once its bytes are copied out. A block read back from disk comes into a reused buffer of the
   * pool: on this VM a fresh 1 MiB buffer costs more than reading and hashing the block
   * (docs/read-pipeline.md "Re-reading from the block cache"). A block still queued for the disk
   * is shared, not copied. Neither a block read back nor one fetched goes to the memory tier (as
   * for streamed blocks, keep()): the caller holds what it reads ahead, and blocks kept there
   * only for a re-read cost fresh memory and GC for every new block. Throws what get() throws.
   */
  async take(key: string, fetch: () => Promise<Buffer>, expectedHash?: string): Promise<Buffer> {
    if (this.closed) throw new FsError('EIO', 'block cache is closed');
    const m = this.memoryHit(key, expectedHash, true);
    if (m) {
      this.counts.hits++;
      this.counts.memoryHits++;
      return m.data;
    }
    // Not single-flight: two readers of one cached block each read it (rare), a fetch is shared.
    // A check() of it in flight (a front end verifying ahead) has the disk read it already.
    await this.checking.get(key);
    if (!this.flight.has(key) && this.disk.has(key)) {
      const d = await this.disk.read(key, expectedHash, true);
      if (d) {
        this.counts.hits++;
        return d.data;
      }
    }
    return this.lookup(key, fetch, expectedHash, false);
  }

  /**
   * The block under `key` when cached (memory, or disk verified like get()), else
   * undefined. Never fetches; does not count as a hit or miss but does count as a use for
   * LRU. Never throws except FsError EIO when the cache is closed.
   */
  async peek(key: string, expectedHash?: string): Promise<Buffer | undefined> {
    if (this.closed) throw new FsError('EIO', 'block cache is closed');
    const m = this.memoryHit(key, expectedHash);
    if (m) return m.data;
    const d = await this.disk.read(key, expectedHash);
    if (!d) return undefined;
    this.memory.set(key, d);
    return d.data;
  }

  /**
   * Inserts a block already obtained (e.g. a file read whole and hashed); it is hashed
   * once here for its read-back checksum. Resolves when it is on disk (or found not
   * storable: larger than maxBytes, or disk trouble). Throws FsError EIO when closed.
   */
  async put(key: string, data: Buffer): Promise<void> {
    if (this.closed) throw new FsError('EIO', 'block cache is closed');
    const b = { data, sum: blake3Hex(data) };
    this.memory.set(key, b);
    await this.disk.store(key, data, b.sum);
  }

  /**
   * Caches a block that arrived in a stream (already verified or version-checked by the
   * caller), without waiting: it goes to disk through the write-behind queue (skipped when the
   * queue is full, as for get()), and NOT to the memory tier, so a big sequential read does not
   * push the blocks that are re-read out of memory, and streaming memory stays the handles'
   * read-ahead (docs/read-pipeline.md). Counted as a miss (a fetch). `sum`: the BLAKE3 hex of
   * `data` when the caller already computed it (a verified block), else computed here. Never throws.
   */
  keep(key: string, data: Buffer, sum?: string): void {
    if (this.closed || this.flight.has(key) || this.writing.has(key)) return;
    if (this.memory.get(key) !== undefined || this.disk.has(key)) {
      this.disk.touch(key);
      return;
    }
    this.counts.misses++;
    this.counts.fetchedBytes += data.length;
    const queue = this.opts.writeQueueBytes ?? 0;
    this.storeBehind(key, data, sum ?? blake3Hex(data), queue > 0 ? queue : Infinity);
  }

  /** Counters; O(1). Never throws. */
  stats(): BlockCacheStats {
    const c = this.disk.counters;
    return {
      bytes: this.disk.bytes,
      blocks: this.disk.count,
      maxBytes: this.opts.maxBytes,
      memoryBytes: this.opts.memoryBytes,
      memoryUsed: this.memory.bytes,
      memoryBlocks: this.memory.count,
      ...this.counts,
      evictions: c.evictions,
      corruptDropped: c.corruptDropped,
      writeErrors: c.writeErrors,
      inflight: this.flight.size,
      writeQueued: this.queuedBytes,
      writeSkips: this.counts.writeSkips,
    };
  }

  /** Calls `fn` with a block file's path before it is deleted (DiskTier.onRemoved). */
  onRemoved(fn: (file: string) => void): void {
    this.disk.onRemoved(fn);
  }

  /**
   * Reads block `key`'s file back and verifies it (as get() does), keeping nothing, so that
   * verifiedFile gives it from now on: a front end that reads verified files itself checks the
   * blocks ahead of its reader this way. False when it is not on disk, or was damaged (then
   * dropped). Never throws.
   */
  check(key: string): Promise<boolean> {
    if (this.closed || !this.disk.has(key)) return Promise.resolve(false);
    if (this.disk.verifiedFile(key) !== undefined) return Promise.resolve(true);
    let p = this.checking.get(key);
    if (!p) {
      p = this.disk.read(key, undefined, true).then((d) => {
        this.checking.delete(key);
        if (d) blockPool.unref(d.data);
        return d !== undefined;
      });
      this.checking.set(key, p);
    }
    return p;
  }

  /** The block's file on disk when written or verified during this run (DiskTier.verifiedFile). Never throws. */
  verifiedFile(key: string): string | undefined {
    return this.disk.verifiedFile(key);
  }

  /** True when `key` is in memory or on disk now (not read back, not counted as a use). Never throws. */
  has(key: string): boolean {
    return this.memory.get(key) !== undefined || this.writing.has(key) || this.disk.has(key);
  }

  /** Resolves when every write-behind store queued so far has finished. Never rejects. */
  async settled(): Promise<void> {
    while (this.behind.size > 0) await Promise.allSettled([...this.behind]);
  }

  /** Keys on disk from least to most recently used. O(n); for diagnostics and tests. */
  lruKeys(): string[] {
    return this.disk.keys();
  }

  /** Removes every cached block, in memory and on disk. Throws FsError when the directory cannot be reset. */
  async clear(): Promise<void> {
    this.memory.clear();
    this.writing.clear();
    await this.disk.clear();
    this.memory.clear(); // anything loaded while the disk was being cleared
  }

  /**
   * Waits for lookups in flight, persists LRU state and closes. Later calls throw EIO.
   * Never throws.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flight.drain();
    await this.settled();
    await this.disk.close();
    this.memory.clear();
  }

  /**
   * The block from memory or the write-behind queue. A pooled block (cache/block-pool.ts) is
   * reused once written: whoever asks gets a copy, or with `share` a reference of its own.
   */
  private memoryHit(key: string, expectedHash?: string, share = false): MemoryBlock | undefined {
    const mem = this.memory.get(key);
    const w = mem ? undefined : this.writing.get(key);
    const m = mem ?? w;
    if (!m) return undefined;
    if (expectedHash !== undefined && m.sum !== expectedHash) {
      this.memory.delete(key);
      return undefined;
    }
    this.disk.touch(key);
    if (m !== w || !blockPool.pooled(w.data)) return m;
    if (!share) return { data: Buffer.from(w.data), sum: w.sum };
    blockPool.ref(w.data);
    return w;
  }

  private async load(key: string, fetch: () => Promise<Buffer>, expectedHash: string | undefined, remember: boolean): Promise<MemoryBlock> {
    const d = await this.disk.read(key, expectedHash);
    if (d) {
      this.counts.hits++;
      if (remember) this.memory.set(key, d);
      return d;
    }
    this.counts.misses++;
    let data: Buffer;
    try {
      data = await fetch();
    } catch (err) {
      throw toFsError(err, `fetch block ${key}`);
    }
    if (!Buffer.isBuffer(data)) throw new FsError('EIO', `fetch block ${key}: source returned ${typeof data}, not a Buffer`);
    this.counts.fetchedBytes += data.length;
    const sum = blake3Hex(data);
    if (expectedHash !== undefined && sum !== expectedHash) {
      this.counts.verifyFailures++;
      throw new FsError('EIO', `block ${key} failed verification: got BLAKE3 ${sum}, expected ${expectedHash}`);
    }
    const b = { data, sum };
    if (remember) this.memory.set(key, b);
    const queue = this.opts.writeQueueBytes ?? 0;
    if (queue <= 0) await this.disk.store(key, data, sum);
    else this.storeBehind(key, data, sum, queue);
    return b;
  }

  /** Queues a disk store without waiting for it; skips it when `limit` bytes are already queued. */
  private storeBehind(key: string, data: Buffer, sum: string, limit: number): void {
    if (this.queuedBytes + data.length > limit) {
      this.counts.writeSkips++;
      return;
    }
    this.queuedBytes += data.length;
    blockPool.ref(data); // a pooled block stays ours until it is on disk
    const b = { data, sum };
    this.writing.set(key, b);
    const p: Promise<unknown> = this.disk.store(key, data, sum).finally(() => {
      if (this.writing.get(key) === b) this.writing.delete(key);
      blockPool.unref(data);
      this.queuedBytes -= data.length;
      this.behind.delete(p);
    });
    this.behind.add(p);
  }
}
