import { FsError, toFsError } from '../../core/fs-error';
import type { Provider } from '../../core/provider';
import { keepStreamed, takeBlock, type BlockStore } from './blob-reader';
import { BlockReader } from './block-reader';
import { BlockRun } from './block-run';
import { streamWindow } from './window-stream';

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

  private key(i: number): string {
    const c = this.content;
    return `v:${c.locationId}:${c.rel}:${c.version}:${i}`;
  }

  /** Throws EHOSTDOWN (unreachable), ESTALE (changed at the source: rescan), EIO. */
  protected block(i: number): Promise<Buffer> {
    return takeBlock(this.store, this.key(i), () => this.fetch(i));
  }

  protected override cached(i: number): boolean {
    return this.store.has?.(this.key(i)) ?? false;
  }

  /**
   * The verified file of block `i` in the block store, when there is one (a front end may read
   * it directly): written by this run after the ranged read of this very version, or read back
   * and checked against the cache's own hash. A new version has other keys, so never a stale one.
   */
  blockFile(i: number): string | undefined {
    return this.store.verifiedFile?.(this.key(i));
  }

  /** Verifies block `i`'s cached file for native reads (BlockStore.check). Never throws. */
  verifyBlock(i: number): Promise<boolean> {
    return this.store.check?.(this.key(i)) ?? Promise.resolve(false);
  }

  /** One source: only a transient error (EIO) is worth a second try, never ESTALE or EHOSTDOWN. */
  protected override retryAfterDirect(err: unknown): boolean {
    return err instanceof FsError && err.code === 'EIO';
  }

  /** A ranged read of that exact version (If-Match), uncached. */
  protected override direct(offset: number, length: number): Promise<Buffer> {
    const c = this.content;
    return this.provider()
      .readRange(c.rel, offset, length, { version: c.version })
      .then(
        (buf) => {
          if (buf.length !== length) throw new FsError('EIO', `${c.label}: got ${buf.length} bytes at ${offset}, expected ${length}`);
          return buf;
        },
        (err) => {
          throw this.mapError(err);
        },
      );
  }

  /**
   * One ranged request of that exact version for blocks `first`..`end`, cut into blocks (each
   * handed over and cached as it completes); blocks it did not deliver are fetched one by one.
   */
  protected override streamRun(first: number, end: number): BlockRun | undefined {
    const p = this.provider();
    if (!p.readRangeStream) return undefined;
    const c = this.content;
    const open = (offset: number, length: number) => p.readRangeStream!(c.rel, offset, length, { version: c.version });
    const run = new BlockRun(first, end);
    const deliver = (i: number, data: Buffer) => {
      keepStreamed(this.store, this.key(i), data);
      run.settle(i, data);
    };
    let why: FsError | undefined;
    void streamWindow(
      open,
      c.size,
      this.blockSize,
      first,
      end,
      deliver,
      (err) => (why = err),
      () => run.gate(),
    ).then((next) =>
      // The version changed: every block says so (never bytes of another version).
      run.finish(next, (i) => (why?.code === 'ESTALE' ? Promise.reject(this.mapError(why)) : this.block(i))),
    );
    return run;
  }

  private mapError(err: unknown): FsError {
    const c = this.content;
    const fe = toFsError(err, c.label);
    if (fe.code === 'ESTALE') return new FsError('ESTALE', `${c.label}: changed at its source since it was indexed; run vdfs scan to see the new version`, err);
    return fe;
  }

  private async fetch(i: number): Promise<Buffer> {
    const c = this.content;
    const offset = i * this.blockSize;
    const length = Math.min(this.blockSize, c.size - offset);
    let buf: Buffer;
    try {
      buf = await this.provider().readRange(c.rel, offset, length, { version: c.version });
    } catch (err) {
      throw this.mapError(err);
    }
    // The index's size is the version's size: anything else is a damaged answer, never cached.
    if (buf.length !== length) throw new FsError('EIO', `${c.label}: block ${i}: got ${buf.length} bytes, expected ${length}`);
    return buf;
  }
}
