import { createReadStream, promises as fsp, constants as C } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
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

  async stat(path: string): Promise<ProviderEntry> {
    const rel = normalizeRel(path);
    const abs = this.realPath(rel);
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
    const abs = this.realPath(rel);
    try {
      const names = await fsp.readdir(abs);
      const out: ProviderEntry[] = [];
      for (const name of names) {
        try {
          const st = await fsp.lstat(join(abs, name), { bigint: true });
          const target = st.isSymbolicLink() ? await fsp.readlink(join(abs, name)) : undefined;
          const e = entryFromStats(name, st, target);
          if (e) out.push(e);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // vanished meanwhile: skip
        }
      }
      return out;
    } catch (err) {
      throw await this.offlineOr(err, `list ${rel}`);
    }
  }

  async readRange(path: string, offset: number, length: number, opts?: ReadOptions): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new FsError('EINVAL', `bad range offset=${offset} length=${length}`);
    const rel = normalizeRel(path);
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(this.realPath(rel), C.O_RDONLY | C.O_NOFOLLOW);
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

  async readStream(path: string, _opts?: ReadOptions): Promise<Readable> {
    const rel = normalizeRel(path);
    const fh = await fsp.open(this.realPath(rel), C.O_RDONLY | C.O_NOFOLLOW).catch(async (err) => {
      throw await this.offlineOr(err, `read ${rel}`);
    });
    return createReadStream('', { fd: fh.fd, autoClose: false }).on('close', () => void fh.close().catch(() => undefined));
  }

  async readlink(path: string): Promise<string> {
    const rel = normalizeRel(path);
    try {
      return await fsp.readlink(this.realPath(rel));
    } catch (err) {
      throw await this.offlineOr(err, `readlink ${rel}`);
    }
  }

  private checkWritable(): void {
    if (this.readonly) throw new FsError('EROFS', `location ${this.root} is read-only`);
  }

  async putFile(path: string, sourceFile: string): Promise<ProviderEntry> {
    this.checkWritable();
    const rel = normalizeRel(path);
    const dest = this.realPath(rel);
    const tmp = `${dest}.vdfs-tmp-${process.pid}-${Date.now()}`;
    try {
      await fsp.copyFile(sourceFile, tmp);
      const fh = await fsp.open(tmp, 'r+');
      try { await fh.sync(); } finally { await fh.close(); }
      await fsp.rename(tmp, dest);
      return await this.stat(rel);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw await this.offlineOr(err, `put ${rel}`);
    }
  }

  async mkdir(path: string): Promise<void> {
    this.checkWritable();
    const rel = normalizeRel(path);
    try { await fsp.mkdir(this.realPath(rel)); } catch (err) { throw await this.offlineOr(err, `mkdir ${rel}`); }
  }

  async remove(path: string): Promise<void> {
    this.checkWritable();
    const rel = normalizeRel(path);
    const abs = this.realPath(rel);
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
    try { await fsp.rename(this.realPath(a), this.realPath(b)); } catch (err) { throw await this.offlineOr(err, `rename ${a}`); }
  }

  async close(): Promise<void> {}
}
