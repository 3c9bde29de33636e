import { blake3Hex } from '../../cache/checksum';
import { blockPool } from '../../cache/block-pool';
import { describeError, FsError, toFsError } from '../../core/fs-error';
import { HASH_BYTES, type Blob } from '../../index/blobs';
import { agreedList, verifyWhole, type BlobTrust } from './blob-trust';
import type { ReplicaSource } from './replica-source';

export type { ReplicaSource } from './replica-source';
import { BlockReader } from './block-reader';
import { BlockRun } from './block-run';
import { streamWindow } from './window-stream';

/** Where blocks come from and go: the block cache (cache/BlockCache satisfies this). */
export interface BlockStore {
  /** Returns the cached block or runs `fetch` once for all concurrent callers. Throws what fetch throws. */
  get(key: string, fetch: () => Promise<Buffer>, expectedHash?: string): Promise<Buffer>;
  /**
   * get() whose caller gives a pooled block back (blockPool.unref) when done (BlockCache.take).
   * Absent: get() is used.
   */
  take?(key: string, fetch: () => Promise<Buffer>, expectedHash?: string): Promise<Buffer>;
  /** True when `key` is cached now. Never throws. Absent: nothing is known to be cached. */
  has?(key: string): boolean;
  /** The file holding block `key` when it is cached and was verified during this run, for native reads. Never throws. */
  verifiedFile?(key: string): string | undefined;
  /** Verifies the cached file of block `key` so verifiedFile gives it; false when not cached (or damaged). Never throws. Absent: false. */
  check?(key: string): Promise<boolean>;
  /** Calls `fn` (synchronously) with the path of a verified file before it is deleted. */
  onRemoved?(fn: (file: string) => void): void;
  /**
   * Caches a streamed block in the background (disk only; see BlockCache.keep), holding its own
   * reference to a pooled block until it is written (cache/block-pool.ts). Never throws. Absent: get() is used.
   */
  keep?(key: string, data: Buffer, sum?: string): void;
}

/**
 * Hands a streamed block (whose BLAKE3 hex is `sum`, when known) to the store without waiting for
 * it. `keep` takes its own reference to a pooled block; a store without it gets a copy (it may
 * hand the buffer to anyone). Never throws.
 */
export function keepStreamed(store: BlockStore, key: string, data: Buffer, sum?: string): void {
  if (store.keep) store.keep(key, data, sum);
  else {
    const own = blockPool.pooled(data) ? Buffer.from(data) : data;
    void store.get(key, async () => own).catch(() => undefined);
  }
}

/** A block for a BlockReader, which gives a pooled one back when done (BlockStore.take). Throws what `fetch` throws. */
export function takeBlock(store: BlockStore, key: string, fetch: () => Promise<Buffer>, expectedHash?: string): Promise<Buffer> {
  return store.take ? store.take(key, fetch, expectedHash) : store.get(key, fetch, expectedHash);
}

/**
 * Reads a blob by block through the block store, fetching misses from the first replica
 * that returns bytes matching the block's hash (failing over to the next one otherwise),
 * with the read-ahead of BlockReader. One reader per open handle.
 *
 * Block hashes decide which bytes are right, so where they come from matters: a trusted list
 * (computed here) checks every source, and blocks are cached under `HASH:i`. A blob known only
 * from peers is settled first: when every source sent the same list, blocks are read lazily
 * against it and cached under a key naming that list (so it never vouches for anyone else's
 * bytes); when the lists differ (or a source has none), the whole blob is read from one
 * source after another until one hashes to the blob's hash, and the block hashes computed from
 * those bytes are adopted as trusted.
 */
export class BlobReader extends BlockReader {
  private blob: Blob;
  private list: Buffer;
  private keyPrefix: string;
  private settling?: Promise<void>;
  private settled = false;

  constructor(
    private readonly store: BlockStore,
    blob: Blob,
    private readonly sources: () => ReplicaSource[],
    private readonly trust?: BlobTrust,
  ) {
    super(blob.size, blob.blockSize);
    this.blob = blob;
    this.list = blob.blockHashes;
    this.keyPrefix = blob.hash;
  }

  /** Throws EHOSTDOWN when no replica is reachable, EIO when none returns verified bytes. */
  protected async block(i: number): Promise<Buffer> {
    if (this.blob.trusted === false) {
      this.settling ??= this.settle().catch((err: unknown) => {
        this.settling = undefined; // the next read tries again
        throw err;
      });
      await this.settling;
    }
    return takeBlock(this.store, `${this.keyPrefix}:${i}`, () => this.fetchBlock(i, this.expected(i)));
  }

  private expected(i: number): string {
    return this.list.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES).toString('hex');
  }

  /**
   * The verified file of block `i` in the block store, when there is one (a front end may
   * read it directly); undefined while the blob's block list is not settled.
   */
  blockFile(i: number): string | undefined {
    if (this.blob.trusted === false && !this.settled) return undefined;
    return this.store.verifiedFile?.(`${this.keyPrefix}:${i}`);
  }

  /** Verifies block `i`'s cached file for native reads (BlockStore.check); false while the block list is not settled. Never throws. */
  verifyBlock(i: number): Promise<boolean> {
    if (this.blob.trusted === false && !this.settled) return Promise.resolve(false);
    return this.store.check?.(`${this.keyPrefix}:${i}`) ?? Promise.resolve(false);
  }

  protected override cached(i: number): boolean {
    return (this.blob.trusted !== false || this.settled) && (this.store.has?.(`${this.keyPrefix}:${i}`) ?? false);
  }

  /** From the best source when it checks versions (S3, Drive); never from a peer (its bytes need the hash). */
  protected override direct(offset: number, length: number): Promise<Buffer> | undefined {
    const best = this.sources()[0];
    if (!best?.versionChecked || (best.size ?? this.blob.size) !== this.blob.size) return undefined;
    return best.read(offset, length).then((b) => {
      if (b.length !== Math.min(length, this.blob.size - offset)) throw new FsError('EIO', `${best.label}: short read`);
      return b;
    });
  }

  /**
   * Blocks `first`..`end` streamed from the best source as one ranged request, each verified
   * against its hash as it completes; a block that fails is fetched from the other sources, and
   * blocks the stream did not deliver are fetched one by one (every source tried).
   */
  protected override streamRun(first: number, end: number): BlockRun | undefined {
    if (this.blob.trusted === false && !this.settled) return undefined;
    const src = this.sources()[0];
    if (!src?.stream || (src.size ?? this.blob.size) !== this.blob.size) return undefined;
    const open = src.stream.bind(src);
    const prefix = this.keyPrefix;
    const run = new BlockRun(first, end);
    const deliver = (i: number, data: Buffer) => {
      const sum = blake3Hex(data);
      if (sum !== this.expected(i)) {
        blockPool.unref(data); // not handed on: the stream's reference ends here
        run.settle(
          i,
          this.store.get(`${prefix}:${i}`, () => this.fetchBlock(i, this.expected(i), src.label)),
        );
        return;
      }
      keepStreamed(this.store, `${prefix}:${i}`, data, sum); // hashed once: the cache's checksum is the verified hash
      run.settle(i, data);
    };
    void streamWindow(
      open,
      this.blob.size,
      this.blockSize,
      first,
      end,
      deliver,
      () => undefined,
      () => run.gate(),
    ).then((next) => run.finish(next, (i) => this.store.get(`${prefix}:${i}`, () => this.fetchBlock(i, this.expected(i)))));
    return run;
  }

  private async settle(): Promise<void> {
    const sources = this.sources();
    const agreed = agreedList(sources, this.trust?.lists(this.blob.hash) ?? new Map(), this.blockSize);
    if (agreed) {
      this.list = agreed.blockHashes;
      this.keyPrefix = `${this.blob.hash}~${blake3Hex(agreed.blockHashes).slice(0, 32)}`;
      this.settled = true;
      return;
    }
    const { blob, blocks } = await verifyWhole(this.blob, sources);
    this.trust?.adopt(blob);
    this.blob = blob;
    this.list = blob.blockHashes;
    this.keyPrefix = blob.hash;
    this.settled = true;
    for (const [i, b] of (blocks ?? []).entries()) await this.store.get(`${blob.hash}:${i}`, async () => b).catch(() => undefined);
  }

  /** Block `i` from the first source (other than `skip`, which just failed it) whose bytes hash to `expected`. */
  private async fetchBlock(i: number, expected: string, skip?: string): Promise<Buffer> {
    const bs = this.blockSize;
    const offset = i * bs;
    const length = Math.min(bs, this.blob.size - offset);
    const failures: string[] = [];
    let allDown = true;
    for (const src of this.sources()) {
      if (src.label === skip) {
        failures.push(`${src.label}: block ${i} failed in its stream`);
        allDown = false;
        continue;
      }
      try {
        const buf = await src.read(offset, length);
        if (buf.length === length && blake3Hex(buf) === expected) return buf;
        failures.push(`${src.label}: block ${i} failed verification`);
        allDown = false;
      } catch (err) {
        const fe = toFsError(err, src.label);
        if (fe.code !== 'EHOSTDOWN') allDown = false;
        failures.push(describeError(fe));
      }
    }
    if (failures.length === 0) throw new FsError('EHOSTDOWN', `no reachable replica of ${this.blob.hash.slice(0, 16)}`);
    throw new FsError(allDown ? 'EHOSTDOWN' : 'EIO', `block ${i} of ${this.blob.hash.slice(0, 16)}: ${failures.join('; ')}`);
  }
}
