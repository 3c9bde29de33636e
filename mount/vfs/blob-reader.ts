import { blake3Hex } from '../../cache/checksum';
import { FsError, toFsError } from '../../providers/fs-error';
import { blockHashAt, type Blob } from '../../index/blobs';

/** Where blocks come from and go: the block cache (cache/BlockCache satisfies this). */
export interface BlockStore {
  /** Returns the cached block or runs `fetch` once for all concurrent callers. Throws what fetch throws. */
  get(key: string, fetch: () => Promise<Buffer>, expectedHash?: string): Promise<Buffer>;
}

/** One place the content can be read from. `read` throws FsError (EHOSTDOWN when unreachable). */
export interface ReplicaSource {
  label: string;
  read(offset: number, length: number): Promise<Buffer>;
}

const MAX_WINDOW_BLOCKS = 32;
const MAX_PREFETCH_INFLIGHT = 4;

/**
 * Reads a blob by block through the block store, fetching misses from the first replica
 * that returns bytes matching the block's hash (failing over to the next one otherwise),
 * with a read-ahead window that grows while reads are sequential. One reader per open handle.
 */
export class BlobReader {
  private nextOffset = -1;
  private window = 0;
  private prefetchedTo = -1;
  private prefetchInflight = 0;

  constructor(
    private readonly store: BlockStore,
    private readonly blob: Blob,
    private readonly sources: () => ReplicaSource[],
  ) {}

  get size(): number {
    return this.blob.size;
  }

  /** Throws EHOSTDOWN when no replica is reachable, EIO when none returns verified bytes. */
  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, this.blob.size);
    if (offset >= end) return Buffer.alloc(0);
    const bs = this.blob.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    this.trackSequential(offset, end, last);
    const blocks = await Promise.all(Array.from({ length: last - first + 1 }, (_, k) => this.block(first + k)));
    if (blocks.length === 1) return blocks[0].subarray(offset - first * bs, end - first * bs);
    return Buffer.concat(blocks).subarray(offset - first * bs, end - first * bs);
  }

  private trackSequential(offset: number, end: number, lastBlock: number): void {
    const sequential = offset === this.nextOffset;
    this.nextOffset = end;
    if (!sequential) {
      this.window = 0;
      return;
    }
    this.window = Math.min(Math.max(2, this.window * 2), MAX_WINDOW_BLOCKS);
    const blocks = Math.ceil(this.blob.size / this.blob.blockSize);
    const to = Math.min(lastBlock + this.window, blocks - 1);
    for (let i = Math.max(lastBlock + 1, this.prefetchedTo + 1); i <= to && this.prefetchInflight < MAX_PREFETCH_INFLIGHT; i++) {
      this.prefetchedTo = i;
      this.prefetchInflight++;
      this.block(i)
        .catch(() => undefined) // a failed prefetch is retried by the real read
        .finally(() => this.prefetchInflight--);
    }
  }

  private block(i: number): Promise<Buffer> {
    const expected = blockHashAt(this.blob, i);
    return this.store.get(`${this.blob.hash}:${i}`, () => this.fetchBlock(i, expected));
  }

  private async fetchBlock(i: number, expected: string): Promise<Buffer> {
    const bs = this.blob.blockSize;
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
        failures.push(fe.message);
      }
    }
    if (failures.length === 0) throw new FsError('EHOSTDOWN', `no reachable replica of ${this.blob.hash.slice(0, 16)}`);
    throw new FsError(allDown ? 'EHOSTDOWN' : 'EIO', `block ${i} of ${this.blob.hash.slice(0, 16)}: ${failures.join('; ')}`);
  }
}
