import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { open, rename, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FsError, toFsError } from '../core/fs-error';
import { readFully } from '../core/read-fully';

const HASH_RE = /^[0-9a-f]{64}$/;

/**
 * The pinned area of the cache: whole blobs kept on this device for pins, as
 * `<cacheDir>/pinned/<2 hex>/<64 hex>`. It is a directory of its own, outside the block
 * tier's `blocks/`, so LRU eviction and `cache clear` never touch it; only the pinner removes
 * what no pin wants any more. A file appears (by rename) only once every block was verified.
 */
export class PinnedArea {
  readonly dir: string;

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'pinned');
  }

  private file(hash: string): string {
    return join(this.dir, hash.slice(0, 2), hash);
  }

  /** True when the blob is here whole (size as expected when given). Never throws. */
  has(hash: string, size?: number): boolean {
    if (!HASH_RE.test(hash)) return false;
    try {
      const st = statSync(this.file(hash));
      return st.isFile() && (size === undefined || st.size === size);
    } catch {
      return false;
    }
  }

  /** Every blob here with its size. Never throws. */
  list(): Map<string, number> {
    const out = new Map<string, number>();
    if (!existsSync(this.dir)) return out;
    for (const sub of readdirSync(this.dir)) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      let names: string[];
      try {
        names = readdirSync(join(this.dir, sub));
      } catch {
        continue;
      }
      for (const n of names) {
        if (!HASH_RE.test(n)) continue;
        try {
          out.set(n, statSync(join(this.dir, sub, n)).size);
        } catch {
          /* removed meanwhile */
        }
      }
    }
    return out;
  }

  /** `length` bytes at `offset` of a pinned blob. Throws EHOSTDOWN when it is not here (so readers fail over), EIO otherwise. */
  async read(hash: string, offset: number, length: number): Promise<Buffer> {
    let fh;
    try {
      fh = await open(this.file(hash), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FsError('EHOSTDOWN', `${hash.slice(0, 16)} is not in the pinned area`);
      throw toFsError(err, `pinned ${hash.slice(0, 16)}`);
    }
    try {
      return await readFully(fh, offset, length);
    } finally {
      await fh.close();
    }
  }

  /**
   * Writes a blob that `fill` produces by calling `write` with its bytes in order (each block
   * already verified by the caller): to a temp file, fsynced, renamed into place. Throws
   * FsError (ENOSPC, EIO, or what `fill` throws); nothing is left behind on failure.
   */
  async store(hash: string, fill: (write: (data: Buffer) => Promise<void>) => Promise<void>): Promise<void> {
    if (!HASH_RE.test(hash)) throw new FsError('EINVAL', `bad hash ${hash}`);
    mkdirSync(join(this.dir, 'tmp'), { recursive: true });
    const tmp = join(this.dir, 'tmp', `${hash}.${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, 'w');
    try {
      let at = 0;
      await fill(async (b) => {
        await fh.write(b, 0, b.length, at);
        at += b.length;
      });
      await fh.datasync();
      await fh.close();
      await mkdir(join(this.dir, hash.slice(0, 2)), { recursive: true });
      await rename(tmp, this.file(hash));
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw toFsError(err, `pin ${hash.slice(0, 16)}`);
    }
  }

  /** Removes a blob (no pin wants it any more). Never throws. */
  async remove(hash: string): Promise<void> {
    if (HASH_RE.test(hash)) await rm(this.file(hash), { force: true }).catch(() => undefined);
  }
}
