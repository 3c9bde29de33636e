import { blake3Hex } from '../../cache/checksum';
import { FsError, toFsError } from '../../providers/fs-error';
import { blockHashAt, type Blob } from '../../index/blobs';
import { BlockReader } from './block-reader';

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

/**
 * Reads a blob by block through the block store, fetching misses from the first replica
 * that returns bytes matching the block's hash (failing over to the next one otherwise),
 * with the read-ahead of BlockReader. One reader per open handle.
 */
export class BlobReader extends BlockReader {
  constructor(
    private readonly store: BlockStore,
    private readonly blob: Blob,
    private readonly sources: () => ReplicaSource[],
  ) {
    super(blob.size, blob.blockSize);
  }

  /** Throws EHOSTDOWN when no replica is reachable, EIO when none returns verified bytes. */
  protected block(i: number): Promise<Buffer> {
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
