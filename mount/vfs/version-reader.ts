import { FsError, toFsError } from '../../core/fs-error';
import type { Provider } from '../../core/provider';
import type { BlockStore } from './blob-reader';
import { BlockReader } from './block-reader';

/** Content whose hash is not known yet: one version of one path of one location. */
export interface VersionedContent {
  locationId: number;
  rel: string;
  /** The provider's version token (ETag) the index holds. */
  version: string;
  size: number;
  /** For messages. */
  label: string;
}

/**
 * Reads content that has not been hashed yet (a cloud object indexed from its listing)
 * block by block through the block cache, keyed `v:${location}:${rel}:${version}:${index}`:
 * a new version is a new key, so the cache never serves stale bytes and needs no
 * invalidation. Misses are ranged reads of that exact version (If-Match / ETag check:
 * ESTALE when the object changed since it was indexed), several in flight with the
 * read-ahead of BlockReader. There is no block hash to check against; see docs/s3.md for
 * what protects these bytes. Cached blocks stay readable while the source is unreachable.
 */
export class VersionReader extends BlockReader {
  constructor(
    private readonly store: BlockStore,
    private readonly provider: () => Provider,
    private readonly content: VersionedContent,
    blockSize: number,
  ) {
    super(content.size, blockSize);
  }

  /** Throws EHOSTDOWN (unreachable), ESTALE (changed at the source: rescan), EIO. */
  protected block(i: number): Promise<Buffer> {
    const c = this.content;
    return this.store.get(`v:${c.locationId}:${c.rel}:${c.version}:${i}`, () => this.fetch(i));
  }

  private async fetch(i: number): Promise<Buffer> {
    const c = this.content;
    const offset = i * this.blockSize;
    const length = Math.min(this.blockSize, c.size - offset);
    let buf: Buffer;
    try {
      buf = await this.provider().readRange(c.rel, offset, length, { version: c.version });
    } catch (err) {
      const fe = toFsError(err, c.label);
      if (fe.code === 'ESTALE') throw new FsError('ESTALE', `${c.label}: changed at its source since it was indexed; run vdfs scan to see the new version`, err);
      throw fe;
    }
    // The index's size is the version's size: anything else is a damaged answer, never cached.
    if (buf.length !== length) throw new FsError('EIO', `${c.label}: block ${i}: got ${buf.length} bytes, expected ${length}`);
    return buf;
  }
}
