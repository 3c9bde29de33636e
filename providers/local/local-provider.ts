import { createReadStream, promises as fsp, constants as C } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { FsError, toFsError } from '../fs-error';
import { normalizeRel, splitPath } from '../paths';
import type { EntryType, Provider, ProviderEntry, ProviderFeatures, ReadOptions } from '../provider';

export function entryTypeOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return undefined; // sockets, fifos, devices are not indexed
}

/** The version token of a local file: inode, size and mtime in ns. */
export function localVersion(st: BigIntStats): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

export function entryFromStats(name: string, st: BigIntStats, target?: string): ProviderEntry | undefined {
  const type = entryTypeOf(st);
  if (!type) return undefined;
  return {
    name,
    type,
    size: type === 'dir' ? 0 : Number(st.size),
    mtimeSec: Number(st.mtimeNs / 1_000_000_000n),
    mtimeNsec: Number(st.mtimeNs % 1_000_000_000n),
    mode: Number(st.mode) & 0o7777,
    version: localVersion(st),
    target,
  };
}

/** A directory on this machine. */
export class LocalProvider implements Provider {
  readonly kind = 'local';
  readonly features: ProviderFeatures = { write: true, symlinks: true, localFiles: true };

  /** The root with symlinks resolved, for the containment check; resolved on first use. */
  private realRoot: string | undefined;

  constructor(readonly root: string, private readonly readonly = false) {}

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
   * The absolute path of `rel`, after checking that no directory on the way is a symlink
   * (with `self`, the final component too). Symlinks are entries of the location, never
   * followed: a link to /etc inside a location must not expose /etc. One realpath call;
   * top-level names need none. Throws ENOTDIR for a path through a symlink, ENOENT, EHOSTDOWN.
   */
  private async inside(rel: string, self = false): Promise<string> {
    const parts = rel === '' ? [] : rel.split('/');
    const abs = join(this.root, ...parts);
    const dirParts = self ? parts : parts.slice(0, -1);
    if (dirParts.length === 0) return abs;
    try {
      this.realRoot ??= await fsp.realpath(this.root);
      const real = await fsp.realpath(join(this.root, ...dirParts));
      if (real !== join(this.realRoot, ...dirParts)) throw new FsError('ENOTDIR', `${rel} goes through a symlink; symlinks are not followed`);
    } catch (err) {
      this.realRoot = undefined; // the root may have been replaced (a drive re-plugged elsewhere)
      throw await this.offlineOr(err, rel);
    }
    return abs;
  }

  async stat(path: string): Promise<ProviderEntry> {
    const rel = normalizeRel(path);
    const abs = await this.inside(rel);
    try {
      const st = await fsp.lstat(abs, { bigint: true });
      const target = st.isSymbolicLink() ? await fsp.readlink(abs) : undefined;
      const e = entryFromStats(rel.split('/').pop() ?? '', st, target);
      if (!e) throw new FsError('ENOTSUP', `${rel} is not a file, directory or symlink`);
      return e;
    } catch (err) {
      throw await this.offlineOr(err, `stat ${rel}`);
    }
  }

  async list(path: string): Promise<ProviderEntry[]> {
    const rel = normalizeRel(path);
    const abs = await this.inside(rel, true);
    try {
      const names = await fsp.readdir(abs);
      const out: (ProviderEntry | undefined)[] = [];
      const one = async (name: string): Promise<ProviderEntry | undefined> => {
        try {
          const st = await fsp.lstat(join(abs, name), { bigint: true });
          const target = st.isSymbolicLink() ? await fsp.readlink(join(abs, name)) : undefined;
          return entryFromStats(name, st, target);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          return undefined; // vanished meanwhile: skip
        }
      };
      // lstat in small parallel batches: a 10k-entry directory (a WebDAV PROPFIND) would
      // otherwise pay one thread-pool round trip per name, one after the other.
      for (let i = 0; i < names.length; i += 32) out.push(...(await Promise.all(names.slice(i, i + 32).map(one))));
      return out.filter((e): e is ProviderEntry => e !== undefined);
    } catch (err) {
      throw await this.offlineOr(err, `list ${rel}`);
    }
  }

  async readRange(path: string, offset: number, length: number, opts?: ReadOptions): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new FsError('EINVAL', `bad range offset=${offset} length=${length}`);
    const rel = normalizeRel(path);
    const abs = await this.inside(rel);
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(abs, C.O_RDONLY | C.O_NOFOLLOW);
      if (opts?.version !== undefined) {
        const st = await fh.stat({ bigint: true });
        if (localVersion(st) !== opts.version) throw new FsError('EIO', `${rel} changed since it was indexed`);
      }
      if (length === 0) return Buffer.alloc(0);
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === length ? buf : buf.subarray(0, got);
    } catch (err) {
      throw await this.offlineOr(err, `read ${rel}`);
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  async readStream(path: string, opts?: ReadOptions): Promise<Readable> {
    const rel = normalizeRel(path);
    const abs = await this.inside(rel);
    const fh = await fsp.open(abs, C.O_RDONLY | C.O_NOFOLLOW).catch(async (err) => {
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
      return await fsp.readlink(await this.inside(rel));
    } catch (err) {
      throw await this.offlineOr(err, `readlink ${rel}`);
    }
  }

  private checkWritable(): void {
    if (this.readonly) throw new FsError('EROFS', `location ${this.root} is read-only`);
  }

  async putFile(path: string, sourceFile: string, opts?: { ifVersion?: string | null }): Promise<ProviderEntry> {
    this.checkWritable();
    const rel = normalizeRel(path);
    const dest = await this.inside(rel);
    const tmp = `${dest}.vdfs-tmp-${process.pid}-${Date.now()}`;
    try {
      await fsp.copyFile(sourceFile, tmp);
      const fh = await fsp.open(tmp, 'r+');
      try { await fh.sync(); } finally { await fh.close(); }
      if (opts?.ifVersion !== undefined) {
        // Compare right before the rename: a change made in between is the small window a
        // local filesystem without compare-and-swap leaves.
        const current = await fsp.lstat(dest, { bigint: true }).then(localVersion, () => null);
        if (current !== opts.ifVersion)
          throw new FsError('ESTALE', `${rel} changed since it was opened (${current === null ? 'it was deleted' : 'another writer'}); not overwriting`);
      }
      await fsp.rename(tmp, dest);
      await this.syncDir(dest);
      return await this.stat(rel);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw await this.offlineOr(err, `put ${rel}`);
    }
  }

  async mkdir(path: string): Promise<void> {
    this.checkWritable();
    const rel = normalizeRel(path);
    const abs = await this.inside(rel);
    try { await fsp.mkdir(abs); } catch (err) { throw await this.offlineOr(err, `mkdir ${rel}`); }
  }

  async remove(path: string): Promise<void> {
    this.checkWritable();
    const rel = normalizeRel(path);
    if (rel === '') throw new FsError('EINVAL', 'the root of a location cannot be removed (use vdfs location rm)');
    const abs = await this.inside(rel);
    try {
      const st = await fsp.lstat(abs);
      if (st.isDirectory()) await fsp.rmdir(abs); else await fsp.unlink(abs);
    } catch (err) {
      throw await this.offlineOr(err, `remove ${rel}`);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    this.checkWritable();
    const a = normalizeRel(from);
    const b = normalizeRel(to);
    if (a === '' || b === '') throw new FsError('EINVAL', 'the root of a location cannot be renamed');
    const from_ = await this.inside(a);
    const to_ = await this.inside(b);
    try {
      await fsp.rename(from_, to_);
      await this.syncDir(to_);
      if (dirname(from_) !== dirname(to_)) await this.syncDir(from_);
    } catch (err) { throw await this.offlineOr(err, `rename ${a}`); }
  }

  /** fsyncs the directory holding `abs`, so a rename survives power loss. */
  private async syncDir(abs: string): Promise<void> {
    const dh = await fsp.open(dirname(abs), C.O_RDONLY | C.O_DIRECTORY);
    try { await dh.sync(); } finally { await dh.close(); }
  }

  async close(): Promise<void> {}
}
