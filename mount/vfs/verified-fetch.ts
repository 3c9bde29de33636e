import { blake3Hex } from '../../cache/checksum';
import { blockCount, blockHashAt, type Blob } from '../../index/blobs';
import { FsError } from '../../core/fs-error';
import { BlobReader, type ReplicaSource } from './blob-reader';

/**
 * Reads a whole blob block by block from `sources` (best first, failing over), each block
 * verified against the index, without going through the block cache (a pin or a repair must
 * not push other content out of the LRU tier). `onBlock` gets the blocks in order. Throws
 * EHOSTDOWN when no source is reachable, EIO when none returns verified bytes, or what
 * `onBlock` throws.
 */
export async function fetchVerified(blob: Blob, sources: () => ReplicaSource[], onBlock: (i: number, data: Buffer) => Promise<void>, fromBlock = 0): Promise<void> {
  // Blocks read ahead are held here until consumed (at most the read-ahead window).
  const ahead = new Map<string, Promise<Buffer>>();
  const store = {
    get(key: string, fetch: () => Promise<Buffer>): Promise<Buffer> {
      let p = ahead.get(key);
      if (!p) {
        p = fetch();
        ahead.set(key, p);
        p.catch(() => ahead.delete(key));
      }
      return p;
    },
  };
  const reader = new BlobReader(store, blob, sources);
  const n = blockCount(blob.size, blob.blockSize);
  try {
    for (let i = fromBlock; i < n; i++) {
      const b = await reader.read(i * blob.blockSize, blob.blockSize);
      ahead.delete(`${blob.hash}:${i}`);
      if (blake3Hex(b) !== blockHashAt(blob, i)) throw new FsError('EIO', `block ${i} of ${blob.hash.slice(0, 16)} failed verification`);
      await onBlock(i, b);
    }
  } finally {
    reader.close(); // gives its read-ahead back to the shared budget
  }
}
