import { Blake3Hasher } from '@napi-rs/blake-hash';
import { blake3Hex } from '../../cache/checksum';
import { blockCount, type Blob, type BlockList } from '../../index/blobs';
import { describeError, FsError, toFsError } from '../../core/fs-error';
import type { ReplicaSource } from './blob-reader';

/** What the reader needs to settle an untrusted blob (VfsCore wires it to the index). */
export interface BlobTrust {
  /** Block lists peer locations sent for `hash`, by location id. Throws what the index throws. */
  lists(hash: string): Map<number, BlockList>;
  /** Stores block hashes computed here from bytes that matched the blob's hash. Throws what the index throws. */
  adopt(blob: Blob): void;
}

/** A verified blob up to this size keeps its blocks for the cache (no second fetch). */
const KEEP_BLOCKS_BYTES = 64 * 1024 * 1024;

/** The one list every source of the blob sent, when they all sent the same one; else undefined. */
export function agreedList(sources: ReplicaSource[], lists: Map<number, BlockList>, blockSize: number): BlockList | undefined {
  let agreed: BlockList | undefined;
  for (const s of sources) {
    const l = s.locationId === undefined ? undefined : lists.get(s.locationId);
    if (!l || l.blockSize !== blockSize || (agreed && !agreed.blockHashes.equals(l.blockHashes))) return undefined;
    agreed = l;
  }
  return agreed;
}

/**
 * Reads the whole blob from each source in turn until one's bytes hash to `blob.hash`, and
 * returns the block hashes computed from those bytes (trusted), with the blocks themselves
 * when the blob is small. Throws EHOSTDOWN when no source is reachable, EIO when none matched.
 */
export async function verifyWhole(blob: Blob, sources: ReplicaSource[]): Promise<{ blob: Blob; blocks?: Buffer[] }> {
  const bs = blob.blockSize;
  const failures: string[] = [];
  let allDown = true;
  for (const src of sources) {
    const size = src.size ?? blob.size;
    const n = blockCount(size, bs);
    const whole = new Blake3Hasher();
    const hashes: Buffer[] = [];
    const blocks: Buffer[] | undefined = size <= KEEP_BLOCKS_BYTES ? [] : undefined;
    try {
      for (let i = 0; i < n; i++) {
        const length = Math.min(bs, size - i * bs);
        const buf = await src.read(i * bs, length);
        if (buf.length !== length) throw new FsError('EIO', `${src.label}: short read`);
        whole.update(buf);
        hashes.push(Buffer.from(blake3Hex(buf), 'hex'));
        blocks?.push(buf);
      }
    } catch (err) {
      const fe = toFsError(err, src.label);
      if (fe.code !== 'EHOSTDOWN') allDown = false;
      failures.push(describeError(fe));
      continue;
    }
    allDown = false;
    if (whole.digest('hex') === blob.hash) {
      return { blob: { hash: blob.hash, size, blockSize: bs, blockHashes: Buffer.concat(hashes), trusted: true }, blocks };
    }
    failures.push(`${src.label}: its bytes do not hash to ${blob.hash.slice(0, 16)}`);
  }
  if (failures.length === 0 || allDown) throw new FsError('EHOSTDOWN', `no reachable replica of ${blob.hash.slice(0, 16)}${failures.length ? `: ${failures.join('; ')}` : ''}`);
  throw new FsError('EIO', `no replica of ${blob.hash.slice(0, 16)} matched its hash: ${failures.join('; ')}`);
}
