import { createReadStream, promises as fsp, constants as C } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { FsError, toFsError } from '../../core/fs-error';
import { readFully } from '../../core/read-fully';
import { normalizeRel, parentOf, splitPath } from '../../core/paths';
import { fdPath, fsyncFd, openBeneath, openDirBeneath, withParent } from '../../core/beneath';
import type { Provider, ProviderEntry, ProviderFeatures, PutOptions, ReadOptions } from '../../core/provider';
import { futimensFd } from '../../core/fd-times';
import { entryFromStats, localVersion } from '../../core/local-stat';

/** A directory on this machine. */
export class LocalProvider implements Provider {
  readonly kind = 'local';
  readonly features: ProviderFeatures = { write: true, symlinks: true, localFiles: true };

  constructor(
    readonly root: string,
    private readonly readonly = false,
  ) {}

  /** For display and for tools only: never open this path, it follows symlinks (see beneath.ts). */
  realPath(path: string): string {
    return join(this.root, ...splitPath(path));
  }

  async isOnline(): Promise<boolean> {
    try {
      return (await fsp.stat(this.root)).isDirectory();
    } catch {
      return false;
    }
  }

  private async offlineOr(err: unknown, context: string): Promise<FsError> {
    const fe = toFsError(err, context);
    // A vanished root (unplugged drive) is "unreachable", not "no such file".
    if (fe.code === 'ENOENT' && !(await this.isOnline())) return new FsError('EHOSTDOWN', `location root ${this.root} is not reachable`, err);
    return fe;
  }

  /**
   * Opens `rel` without following a symlink anywhere inside the location (see beneath.ts):
   * symlinks are entries of the location, never followed, so a link to /etc (or a directory
   * swapped for one after the scan) never exposes /etc. Throws ENOTDIR, ELOOP, ENOENT, EACCES.
   */
  open(rel: string, flags: number, mode?: number): Promise<fsp.FileHandle> {
    return openBeneath(this.root, rel, flags, mode);
  }

  /** Runs `fn` on `rel`'s name inside its safely opened parent directory (see beneath.ts). */
  withParent<T>(rel: string, fn: (at: string, dirFd: number, name: string) => Promise<T>): Promise<T> {
    return withParent(this.root, rel, fn);
  }

  private async statAt(at: string, name: string): Promise<ProviderEntry> {
    const st = await fsp.lstat(at, { bigint: true });
    const target = st.isSymbolicLink() ? await fsp.readlink(at) : undefined;
    const e = entryFromStats(name, st, target);
    if (!e) throw new FsError('ENOTSUP', `${name} is not a file, directory or symlink`);
    return e;
  }

  async stat(path: string): Promise<ProviderEntry> {
    const rel = normalizeRel(path);
    try {
      if (rel === '') {
        const dh = await this.open('', C.O_RDONLY | C.O_DIRECTORY);
        try {
          return entryFromStats('', await dh.stat({ bigint: true }))!;
        } finally {
          await dh.close();
        }
      }
      return await this.withParent(rel, (at, _dir, name) => this.statAt(at, name));
    } catch (err) {
      throw await this.offlineOr(err, `stat ${rel}`);
    }
  }

  async list(path: string): Promise<ProviderEntry[]> {
    const rel = normalizeRel(path);
    let dh: fsp.FileHandle | undefined;
    try {
      dh = await openDirBeneath(this.root, splitPath(rel), rel);
      const dir = dh;
      const names = await fsp.readdir(fdPath(dir));
      const out: (ProviderEntry | undefined)[] = [];
      const one = async (name: string): Promise<ProviderEntry | undefined> => {
        try {
          return await this.statAt(fdPath(dir, name), name);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT' && !(err instanceof FsError && err.code === 'ENOTSUP')) throw err;
          return undefined; // vanished meanwhile, or a fifo/socket/device: skip
        }
      };
      // lstat in small parallel batches: a 10k-entry directory (a WebDAV PROPFIND) would
      // otherwise pay one thread-pool round trip per name, one after the other.
      for (let i = 0; i < names.length; i += 32) out.push(...(await Promise.all(names.slice(i, i + 32).map(one))));
      return out.filter((e): e is ProviderEntry => e !== undefined);
    } catch (err) {
      throw await this.offlineOr(err, `list ${rel}`);
    } finally {
      await dh?.close().catch(() => undefined);
    }
  }

  async readRange(path: string, offset: number, length: number, opts?: ReadOptions): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw new FsError('EINVAL', `bad range offset=${offset} length=${length}`);
    const rel = normalizeRel(path);
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await this.open(rel, C.O_RDONLY);
      if (opts?.version !== undefined) {
        const st = await fh.stat({ bigint: true });
        if (localVersion(st) !== opts.version) throw new FsError('EIO', `${rel} changed since it was indexed`);
      }
      return await readFully(fh, offset, length);
    } catch (err) {
      throw await this.offlineOr(err, `read ${rel}`);
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  async readStream(path: string, opts?: ReadOptions): Promise<Readable> {
    const rel = normalizeRel(path);
    const fh = await this.open(rel, C.O_RDONLY).catch(async (err) => {
      throw await this.offlineOr(err, `read ${rel}`);
    });
    try {
      // Checked now: a stream that fails on its first read is an error the caller sees too late.
      const st = await fh.stat({ bigint: true });
      if (st.isDirectory()) throw new FsError('EISDIR', `${rel} is a directory`);
      if (!st.isFile()) throw new FsError('EINVAL', `${rel} is not a regular file`);
      if (opts?.version !== undefined && localVersion(st) !== opts.version) throw new FsError('EIO', `${rel} changed since it was indexed`);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw toFsError(err, `read ${rel}`);
    }
    return createReadStream('', { fd: fh.fd, autoClose: false }).on('close', () => void fh.close().catch(() => undefined));
  }

  async readlink(path: string): Promise<string> {
    const rel = normalizeRel(path);
    try {
      return await this.withParent(rel, (at) => fsp.readlink(at));
    } catch (err) {
      throw await this.offlineOr(err, `readlink ${rel}`);
    }
  }

  private checkWritable(): void {
    if (this.readonly) throw new FsError('EROFS', `location ${this.root} is read-only`);
  }

  async putFile(path: string, sourceFile: string, opts?: PutOptions): Promise<ProviderEntry> {
    this.checkWritable();
    const rel = normalizeRel(path);
    try {
      await this.withParent(rel, async (dest, dir, name) => {
        const tmp = fdPath(dir, `${name}.vdfs-tmp-${process.pid}-${Date.now()}`);
        try {
          // COPYFILE_EXCL (O_CREAT|O_EXCL): a name planted in the parent is never written through.
          await fsp.copyFile(sourceFile, tmp, C.COPYFILE_EXCL);
          // The copy has the source file's mode (a private staging file: 0600). A put replaces
          // content, not metadata: the file keeps its mode, and a new one gets a new file's.
          const mode =
            (await fsp.lstat(dest).then(
              (s) => (s.isFile() ? s.mode & 0o7777 : undefined),
              () => undefined,
            )) ?? 0o666 & ~process.umask();
          const fh = await fsp.open(tmp, C.O_RDWR | C.O_NOFOLLOW);
          try {
            // chown before chmod: it clears setuid/setgid.
            if (opts?.meta?.uid !== undefined) await fh.chown(opts.meta.uid, opts.meta.gid ?? -1);
            await fh.chmod(opts?.meta?.mode ?? mode);
            if (opts?.meta) await setMtime(fh, opts.meta.mtimeSec, opts.meta.mtimeNsec);
            await fh.sync();
          } finally {
            await fh.close();
          }
          if (opts?.ifVersion !== undefined) {
            // Compare right before the rename: a change made in between is the small window a
            // local filesystem without compare-and-swap leaves.
            const current = await fsp.lstat(dest, { bigint: true }).then(localVersion, () => null);
            if (current !== opts.ifVersion)
              throw new FsError('ESTALE', `${rel} changed since it was opened (${current === null ? 'it was deleted' : 'another writer'}); not overwriting`);
          }
          await fsp.rename(tmp, dest);
          await fsyncFd(dir);
        } catch (err) {
          await fsp.unlink(tmp).catch(() => undefined);
          throw err;
        }
      });
      return await this.stat(rel);
    } catch (err) {
      throw await this.offlineOr(err, `put ${rel}`);
    }
  }

  async mkdir(path: string): Promise<void> {
    this.checkWritable();
    const rel = normalizeRel(path);
    try {
      await this.withParent(rel, (at) => fsp.mkdir(at));
    } catch (err) {
      throw await this.offlineOr(err, `mkdir ${rel}`);
    }
  }

  async remove(path: string): Promise<void> {
    this.checkWritable();
    const rel = normalizeRel(path);
    if (rel === '') throw new FsError('EINVAL', 'the root of a location cannot be removed (use vdfs location rm)');
    try {
      await this.withParent(rel, async (at) => {
        const st = await fsp.lstat(at);
        if (st.isDirectory()) await fsp.rmdir(at);
        else await fsp.unlink(at);
      });
    } catch (err) {
      throw await this.offlineOr(err, `remove ${rel}`);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    this.checkWritable();
    const a = normalizeRel(from);
    const b = normalizeRel(to);
    if (a === '' || b === '') throw new FsError('EINVAL', 'the root of a location cannot be renamed');
    try {
      await this.withParent(a, (atA, dirA) =>
        this.withParent(b, async (atB, dirB) => {
          await fsp.rename(atA, atB);
          await fsyncFd(dirB);
          if (parentOf(a) !== parentOf(b)) await fsyncFd(dirA);
        }),
      );
    } catch (err) {
      throw await this.offlineOr(err, `rename ${a}`);
    }
  }

  async close(): Promise<void> {}
}

/**
 * The mtime of an open file, exact to the nanosecond through the addon's futimens (rsync and
 * cp -p compare nanoseconds); without the addon, Node's futimes (a double: about 0.2 µs off).
 */
async function setMtime(fh: fsp.FileHandle, sec: number, nsec: number): Promise<void> {
  const rc = futimensFd(fh.fd, 'omit', { sec, nsec });
  if (rc !== undefined && rc < 0) throw new FsError('EIO', `setting the mtime of a placed file failed (errno ${-rc})`);
  if (rc !== undefined) return;
  const st = await fh.stat();
  await fh.utimes(st.atime, sec + nsec / 1e9);
}
