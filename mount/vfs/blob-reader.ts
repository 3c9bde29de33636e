import { blake3Hex } from '../../cache/checksum';
import { describeError, FsError, toFsError } from '../../core/fs-error';
import { HASH_BYTES, type Blob } from '../../index/blobs';
import { agreedList, verifyWhole, type BlobTrust } from './blob-trust';
import type { ReplicaSource } from './replica-source';

export type { ReplicaSource } from './replica-source';
import { BlockReader } from './block-reader';

/** Where blocks come from and go: the block cache (cache/BlockCache satisfies this). */
export interface BlockStore {
  /** Returns the cached block or runs `fetch` once for all concurrent callers. Throws what fetch throws. */
  get(key: string, fetch: () => Promise<Buffer>, expectedHash?: string): Promise<Buffer>;
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
    const expected = this.list.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES).toString('hex');
    return this.store.get(`${this.keyPrefix}:${i}`, () => this.fetchBlock(i, expected));
  }

  private async settle(): Promise<void> {
    const sources = this.sources();
    const agreed = agreedList(sources, this.trust?.lists(this.blob.hash) ?? new Map(), this.blockSize);
    if (agreed) {
      this.list = agreed.blockHashes;
      this.keyPrefix = `${this.blob.hash}~${blake3Hex(agreed.blockHashes).slice(0, 32)}`;
      return;
    }
    const { blob, blocks } = await verifyWhole(this.blob, sources);
    this.trust?.adopt(blob);
    this.blob = blob;
    this.list = blob.blockHashes;
    this.keyPrefix = blob.hash;
    for (const [i, b] of (blocks ?? []).entries()) await this.store.get(`${blob.hash}:${i}`, async () => b).catch(() => undefined);
  }

  private async fetchBlock(i: number, expected: string): Promise<Buffer> {
    const bs = this.blockSize;
    const offset = i * bs;
    const length = Math.min(bs, this.blob.size - offset);
    const failures: string[] = [];
    let allDown = true;
    for (const src of this.sources()) {
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
