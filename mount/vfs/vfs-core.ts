import { constants as C, fchmodSync, fchownSync, fstatSync, promises as fsp, read } from 'node:fs';
import type { Logger } from 'pino';
import { HashPool } from '../../index/hash-pool';
import { PropStore } from '../../index/props';
import { syncIndex } from '../../index/db';
import { FsError, toFsError } from '../../core/fs-error';
import type { Entry } from '../../index/entries';
import type { Location } from '../../index/locations';
import { localVersion } from '../../core/local-stat';
import { fdPath, openBeneath, openDirBeneath } from '../../core/beneath';
import { splitPath } from '../../core/paths';
import { isHiddenRel } from '../../index/state-paths';
import type { VfsHome } from './vfs-home';
import { dirAttr, entryAttr, INO_BY_HASH, INO_ROOT, INO_VDFS } from './attrs';
import type { Blob } from '../../index/blobs';
import { BlobReader, type BlockStore } from './blob-reader';
import { VersionReader } from './version-reader';
import { HandleTable, type Handle, type LocalHandle, type StagedHandle } from './handles';
import { LocalWriter } from './local-writer';
import { splitVirtual, VDFS_DIR, virtualPath, type Resolved } from './namespace';
import { StagedWriter } from './staged-writer';
import { isStaged, isWritableRemote, resolveTarget } from './targets';
import { isSpecial, typeOfModeBits, type ProviderFeatures } from '../../core/provider';
import { RemoteWriter } from './remote-writer';
import { LiveSizes } from './live-sizes';
import { UploadQueue } from './upload-queue';
import { ProviderPool, Replicas, type OpenProvider } from './replicas';
import { Resolver } from './resolver';
import { PinnedArea } from '../../cache/pinned-area';
import { Pins } from './pins';
import type { Attr, Caller, DeadProp, DirEntry, KernelVfs, OpenFlags, StatFs, TimeSet } from './types';
import { DiskStats, type DiskStat } from './disk-stats';
import { fallocateFd, installNativeDirOpener, setTimesFd } from './posix-calls';
import { withParent } from '../../core/beneath';

/** Milliseconds since the epoch as an exact-as-possible TimeSet. */
function msTime(ms: number): { sec: number; nsec: number } {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.min(999_999_999, Math.max(0, Math.round((ms - sec * 1000) * 1e6))) };
}

const HASH_RE = /^[0-9a-f]{64}$/;
const NO_FEATURES: ProviderFeatures = { write: false, symlinks: false, localFiles: false };

/** fs.read on the raw descriptor: the hot path of every FUSE read, without FileHandle's extra layer. */
function pread(fd: number, buf: Buffer, at: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, at, buf.length - at, position, (err, n) => (err ? reject(err) : resolve(n))));
}
const XATTR_HASH = 'user.vdfs.hash';
const XATTR_REPLICAS = 'user.vdfs.replicas';
const XATTR_PINNED = 'user.vdfs.pinned';

export interface VfsCoreOptions {
  blocks: BlockStore;
  log?: Logger;
  /** Run the upload queue (the daemon does; one-shot commands such as `vdfs cat` do not). */
  uploads?: boolean;
  /** Opens a location's provider (the application's registry: the VFS names no concrete provider). */
  openProvider: OpenProvider;
}

/** The filesystem core: namespace, handles, read pipeline; writes go to LocalWriter. */
export class VfsCore implements KernelVfs {
  readonly resolver: Resolver;
  readonly providers: ProviderPool;
  readonly replicas: Replicas;
  /** Pins (available offline); the daemon runs their background fetching. */
  readonly pins: Pins;
  readonly handles = new HandleTable();
  readonly writer: LocalWriter;
  readonly staged: StagedWriter;
  readonly remote = new RemoteWriter(this);
  /** Sizes of files open for writing, shared by every writer. */
  readonly live = new LiveSizes();
  /** Owners, link counts, atime and ctime of local entries, as their disk last said. */
  readonly disk = new DiskStats();
  private propStore?: PropStore;
  /** Re-hashes written files off the event loop. */
  readonly hashPool = new HashPool(1);

  constructor(
    readonly home: VfsHome,
    private readonly opts: VfsCoreOptions,
  ) {
    installNativeDirOpener();
    this.providers = new ProviderPool(opts.openProvider);
    this.resolver = new Resolver(home);
    const pinned = new PinnedArea(home.cacheDir);
    this.replicas = new Replicas(home, this.providers, pinned);
    this.pins = new Pins(home, pinned, this.replicas, opts.log);
    this.writer = new LocalWriter(this);
    const queue = new UploadQueue(
      home,
      this.providers,
      this.hashPool,
      opts.log,
      (f) => this.staged.isBusy(f),
      () => this.resolver.invalidate(),
    );
    this.staged = new StagedWriter(this, queue);
    if (opts.uploads) queue.start();
  }

  /** The daemon's logger (undefined in-process without one): for failures handled off the caller's path. */
  get log(): Logger | undefined {
    return this.opts.log;
  }

  /**
   * What the location's provider supports: capabilities decide, never the kind string. A kind
   * this build cannot open supports nothing (its reads fail with the opener's error).
   */
  featuresOf(loc: Location): ProviderFeatures {
    try {
      return this.providers.get(loc).features;
    } catch {
      return NO_FEATURES;
    }
  }

  /** Has real files on this machine (the fast path reads and writes them directly). */
  private isLocal(loc: Location): boolean {
    return this.featuresOf(loc).localFiles;
  }

  /** The location a path is in, when it is one of the staged kind (cloud or write-back). */
  private stagedLocation(path: string): boolean {
    const name = splitVirtual(path).location;
    const loc = name ? this.home.locations.find(name) : undefined;
    return !!loc && isStaged(loc, this.featuresOf(loc));
  }

  private liveAttr(path: string): { size: number; mtimeMs: number; mtimeNs?: bigint; mode?: number } | undefined {
    return this.live.get(path);
  }

  resolve(path: string): Resolved {
    return this.resolver.resolve(path);
  }

  /** Resolves to an indexed entry; the root and virtual views answer EROFS/ENOENT for `what`. */
  resolveEntry(path: string, what: string): { location: Location; entry: Entry; rel: string } {
    const r = this.resolve(path);
    if (r.kind === 'entry') return r;
    if (r.kind === 'root') throw new FsError('EROFS', `${what}: the root lists locations; add one with vdfs location add`);
    throw new FsError('EROFS', `${what}: ${path} is a read-only view`);
  }

  async getattr(path: string): Promise<Attr> {
    const r = this.resolve(path);
    if (r.kind === 'root') return dirAttr(INO_ROOT);
    if (r.kind === 'virtual') return this.virtualAttr(r.parts, path);
    return entryAttr(r.entry, r.location.readonly, this.liveAttr(path), await this.diskStat(r.location, r.entry, r.rel), r.location.kind === 'local');
  }

  /** What the disk says of a local entry beyond the index (lstat once, then kept up to date by the writer). */
  private async diskStat(loc: Location, entry: Entry, rel: string): Promise<DiskStat | undefined> {
    if (!this.isLocal(loc)) return undefined;
    const known = this.disk.get(entry.id);
    if (known) return known;
    try {
      const st = rel === '' ? await fsp.stat(loc.uri, { bigint: true }) : await withParent(loc.uri, rel, (at) => fsp.lstat(at, { bigint: true }));
      if (localVersion(st) !== entry.version && entry.type === 'file') return undefined; // changed meanwhile: the index catches up first
      this.disk.set(entry.id, st);
      return this.disk.get(entry.id);
    } catch {
      return undefined; // unreachable or gone: the index's view
    }
  }

  /**
   * lstat, once, the children of a local directory the disk stats do not know yet (entries
   * indexed by a scan, never looked up): a listing (READDIRPLUS hands the kernel every child's
   * attributes) then shows the disk's owners, link counts, atime and ctime, not the daemon's.
   * Through the listed directory's fd, without following symlinks; failures leave the index's view.
   */
  private async primeDiskStats(loc: Location, rel: string, children: Entry[]): Promise<void> {
    const unknown = children.filter((c) => !this.disk.has(c.id));
    if (unknown.length === 0) return;
    const dh = await openDirBeneath(loc.uri, splitPath(rel), rel).catch(() => undefined);
    if (!dh) return;
    try {
      for (let i = 0; i < unknown.length; i += 64) {
        await Promise.all(
          unknown.slice(i, i + 64).map(async (c) => {
            const st = await fsp.lstat(fdPath(dh, c.name), { bigint: true }).catch(() => undefined);
            // A file changed since it was indexed: the index catches up first (as in diskStat).
            if (st && (c.type !== 'file' || localVersion(st) === c.version)) this.disk.set(c.id, st);
          }),
        );
      }
    } finally {
      await dh.close().catch(() => undefined);
    }
  }

  private virtualAttr(parts: string[], path: string): Attr {
    if (parts.length === 0) return dirAttr(INO_VDFS);
    if (parts[0] === 'by-hash' && parts.length === 1) return dirAttr(INO_BY_HASH);
    if (parts[0] === 'by-hash' && parts.length === 2 && HASH_RE.test(parts[1])) {
      const blob = this.home.blobs.get(parts[1]);
      const e = blob ? this.home.entries.byHash(blob.hash).find((x) => x.type === 'file') : undefined;
      if (blob && e) return { ...entryAttr(e, true), mode: 0o444 };
    }
    throw new FsError('ENOENT', `${path}: no such entry`);
  }

  async readdir(path: string): Promise<DirEntry[]> {
    const r = this.resolve(path);
    if (r.kind === 'root') {
      const out: DirEntry[] = [{ name: VDFS_DIR, attr: dirAttr(INO_VDFS) }];
      for (const loc of this.home.locations.list()) {
        const root = this.home.entries.root(loc.id);
        if (!root) continue; // never scanned: nothing to show yet
        this.resolver.prime(`/${loc.name}`, { kind: 'entry', location: loc, entry: root, rel: '' });
        out.push({ name: loc.name, attr: entryAttr(root, loc.readonly) });
      }
      return out;
    }
    if (r.kind === 'virtual') {
      if (r.parts.length === 0) return [{ name: 'by-hash', attr: dirAttr(INO_BY_HASH) }];
      if (r.parts.length === 1 && r.parts[0] === 'by-hash') return []; // open any blob by name; listing all would be huge
      throw new FsError('ENOTDIR', `${path} is not a directory`);
    }
    if (r.entry.type !== 'dir') throw new FsError('ENOTDIR', `${path} is not a directory`);
    const base = path.endsWith('/') ? path.slice(0, -1) : path;
    const hidden = this.home.hidden.of(r.location.uri); // [] for a cloud or peer location
    const children = this.home.entries.children(r.entry.id);
    if (r.location.kind === 'local') await this.primeDiskStats(r.location, r.rel, children);
    // The children are not put in the resolver's cache: READDIRPLUS hands the kernel every
    // child's attributes, so few are resolved next, and priming 100,000 names per `find` cost
    // more (and evicted the paths in use) than the one query a later miss takes.
    const local = r.location.kind === 'local';
    return (hidden.length === 0 ? children : children.filter((c) => !isHiddenRel(r.rel === '' ? c.name : `${r.rel}/${c.name}`, hidden))).map((child) => ({
      name: child.name,
      attr: entryAttr(child, r.location.readonly, this.live.size > 0 ? this.liveAttr(`${base}/${child.name}`) : undefined, this.disk.get(child.id), local),
    }));
  }

  async readlink(path: string): Promise<string> {
    const r = this.resolve(path);
    if (r.kind !== 'entry' || r.entry.type !== 'symlink') throw new FsError('EINVAL', `${path} is not a symlink`);
    return r.entry.target ?? '';
  }

  async open(path: string, flags: OpenFlags = {}): Promise<number> {
    if (flags.write || flags.create || flags.truncate) {
      return this.handles.add(await (this.stagedLocation(path) ? this.staged.openForWrite(path, flags) : this.writer.openForWrite(path, flags)));
    }
    let r = this.resolve(path);
    if (r.kind === 'root') throw new FsError('EISDIR', `${path} is a directory`);
    if (r.kind === 'virtual') {
      const hash = r.parts[0] === 'by-hash' && r.parts.length === 2 ? r.parts[1] : undefined;
      if (!hash || !HASH_RE.test(hash)) throw new FsError(r.parts.length <= 1 ? 'EISDIR' : 'ENOENT', `${path}: cannot open`);
      return this.handles.add({ kind: 'blob', vpath: path, reader: this.blobReader(hash, path) });
    }
    if (r.entry.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    if (r.entry.type === 'symlink') throw new FsError('ELOOP', `${path} is a symlink`);
    // The kernel opens FIFOs and devices of the mount itself; anyone else asking (WebDAV, vdfs
    // cat) would block on a FIFO or read a device: they have no content to serve.
    if (isSpecial(r.entry.type)) throw new FsError('EPERM', `${path} is a ${r.entry.type}: it has no content to read`);
    if (isStaged(r.location, this.featuresOf(r.location))) {
      const pending = await this.staged.openPendingForRead(r.location, r.rel, path);
      if (pending) return this.handles.add(pending);
      // Uploaded (or moved) while we looked: the entry now names the source's version.
      const now = this.resolve(path);
      if (now.kind !== 'entry' || now.entry.type !== 'file') throw new FsError('ENOENT', `${path}: removed while it was being opened`);
      r = now;
    }
    const local = await this.openLocal(path, r.location, r.entry, r.rel);
    if (local) return this.handles.add(local);
    if (!r.entry.hash) {
      const reader = this.versionReader(r.location, r.entry, r.rel, path);
      if (reader) return this.handles.add({ kind: 'blob', vpath: path, reader });
      throw new FsError('EHOSTDOWN', `${path}: its location ${r.location.name} is unreachable and its content was never hashed, so no other replica is known`);
    }
    return this.handles.add({ kind: 'blob', vpath: path, reader: this.blobReader(r.entry.hash, path) });
  }

  /** The real file, when its location is local and reachable; undefined when it is not. */
  private async openLocal(path: string, loc: Location, entry: Entry, rel: string): Promise<LocalHandle | undefined> {
    if (!this.isLocal(loc)) return undefined;
    const provider = this.providers.get(loc);
    try {
      // No symlink followed on the way (a directory swapped for a link after the scan).
      const fd = await openBeneath(loc.uri, rel, C.O_RDONLY);
      const st = await fd.stat({ bigint: true });
      if (!st.isFile()) {
        await fd.close();
        throw new FsError('ENOENT', `${path} is no longer a regular file on disk`);
      }
      // Another file than the indexed one (other inode, size or mtime): the index follows
      // the disk; what is served is still that location's own file at that name.
      if (localVersion(st) !== entry.version) this.writer.sync.noteExternalChange(loc, rel);
      return { kind: 'local', fd, vpath: path, location: loc, rel, entryId: entry.id, writable: false, append: false, dirty: false };
    } catch (err) {
      const fe = toFsError(err, `open ${path}`);
      if (fe.code !== 'ENOENT' && fe.code !== 'EACCES' && fe.code !== 'EIO') throw fe;
      if (await provider.isOnline()) {
        if (fe.code === 'ENOENT') this.writer.sync.noteExternalChange(loc, rel);
        if (fe.code !== 'ENOENT' || !entry.hash) throw fe;
      } else if (loc.online) {
        this.home.locations.setOnline(loc.id, false);
        this.resolver.invalidate();
      }
      return undefined; // unreachable or gone: read another replica by hash
    }
  }

  /**
   * Content not hashed yet on a remote location (an S3 object indexed from its listing): read
   * that exact version by ranged reads through the cache. Undefined for a local location (it
   * was unreachable) or a kind this build cannot open.
   */
  private versionReader(loc: Location, entry: Entry, rel: string, path: string): VersionReader | undefined {
    if (!entry.version || this.isLocal(loc)) return undefined;
    try {
      this.providers.get(loc);
    } catch {
      return undefined;
    }
    const content = { locationId: loc.id, rel, version: entry.version, size: entry.size, label: path };
    return new VersionReader(this.opts.blocks, () => this.providers.get(loc), content, this.home.config.blockSize);
  }

  private blobReader(hash: string, path: string): BlobReader {
    const blob = this.home.blobs.get(hash);
    if (!blob) throw new FsError('ENOENT', `${path}: content ${hash.slice(0, 16)} is not known to the index`);
    const trust = { lists: (h: string) => this.home.blobs.peerLists(h), adopt: (b: Blob) => this.home.blobs.put(b) };
    return new BlobReader(this.opts.blocks, blob, () => this.replicas.sources(hash), trust);
  }

  async read(fh: number, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    const n = await this.readInto(fh, buf, offset);
    return n === length ? buf : buf.subarray(0, n);
  }

  /** Reads into the caller's buffer (FUSE hands us one): no extra copy on the direct path. */
  async readInto(fh: number, buf: Buffer, offset: number): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `bad offset ${offset}`);
    const h = this.handles.get(fh);
    if (h.kind === 'local' || h.kind === 'staged') {
      let got = 0;
      while (got < buf.length) {
        const n = await pread(h.fd.fd, buf, got, offset + got).catch((err) => {
          throw toFsError(err, `read ${h.vpath}`);
        });
        if (n === 0) break;
        got += n;
      }
      return got;
    }
    return h.reader.readInto(offset, buf);
  }

  /**
   * The descriptor a front end may pread directly for this handle, bypassing readInto: a
   * real file opened read-only (a local location, or a staged copy). Undefined for content
   * read through the cache and for handles open for writing (see nativeWriteFd).
   * The descriptor stays valid until release(fh). Throws EBADF for an unknown handle.
   */
  nativeReadFd(fh: number): number | undefined {
    const h = this.handles.get(fh);
    return (h.kind === 'local' || h.kind === 'staged') && !h.writable ? h.fd.fd : undefined;
  }

  /**
   * The descriptor a front end may pwrite directly for this handle instead of calling write():
   * a real file open for writing at explicit offsets (local, or a staged copy; not O_APPEND).
   * After each such write the front end calls noteWritten. Throws EBADF for an unknown handle.
   */
  nativeWriteFd(fh: number): number | undefined {
    const h = this.handles.get(fh);
    return (h.kind === 'local' || h.kind === 'staged') && h.writable && !h.append ? h.fd.fd : undefined;
  }

  /**
   * Content read through the block cache by hash (a blob handle): its size, block size and the
   * verified file of each block cached so far, which a front end may read directly instead of
   * calling readInto. Undefined for other handles. Throws EBADF for an unknown handle.
   */
  nativeBlocks(fh: number): { size: number; blockSize: number; file(i: number): string | undefined } | undefined {
    const h = this.handles.get(fh);
    if (h.kind !== 'blob' || !(h.reader instanceof BlobReader)) return undefined;
    const reader = h.reader;
    return { size: reader.size, blockSize: reader.blockSize, file: (i) => reader.blockFile(i) };
  }

  /** Calls `fn` with the path of a block file nativeBlocks handed out, before the cache deletes it. */
  onBlockFileRemoved(fn: (file: string) => void): void {
    this.opts.blocks.onRemoved?.(fn);
  }

  handlePath(fh: number): string {
    return this.handles.get(fh).vpath;
  }

  onChange(fn: () => void): void {
    this.resolver.onChange(fn);
  }

  /** Bookkeeping of a write done on nativeWriteFd (what write() does after writing). Throws EBADF. */
  noteWritten(fh: number, offset: number, n: number): void {
    const h = this.writable(fh);
    h.dirty = true;
    this.live.wrote(h.vpath, offset, n, h.append);
  }

  /**
   * chown, chmod and utimens of a file open for writing on a local location, through the
   * handle's own descriptor (fchown, fchmod, futimens: the inode the handle has open, no path
   * walk): `tar x` sends all three for every file it writes. The index follows at the next
   * flush or close (the handle is marked dirty); until then getattr shows the mode and mtime
   * from here. False when the handle is not such a file (the caller then changes by path).
   * Throws FsError (EPERM, EBADF).
   */
  setattrOpen(fh: number, change: { uid: number; gid: number; mode?: number; atime: TimeSet; mtime: TimeSet }): boolean {
    const h = this.handles.get(fh);
    if (h.kind !== 'local' || !h.writable) return false;
    const fd = h.fd.fd;
    const what = `setattr ${h.vpath}`;
    // Times first: without the addon there is no futimens, and nothing must have changed yet.
    if ((change.atime !== 'omit' || change.mtime !== 'omit') && !setTimesFd(fd, change.atime, change.mtime, what)) return false;
    try {
      // chown before chmod: it clears setuid/setgid, and a mode sent with it is the one wanted after.
      if (change.uid !== -1 || change.gid !== -1) fchownSync(fd, change.uid, change.gid);
      if (change.mode !== undefined) fchmodSync(fd, change.mode & 0o7777);
    } catch (err) {
      throw toFsError(err, what);
    }
    const st = fstatSync(fd, { bigint: true });
    this.disk.set(h.entryId, st);
    this.live.changedMeta(h.vpath, Number(st.mode & 0o7777n), st.mtimeNs);
    h.dirty = true;
    return true;
  }

  write(fh: number, offset: number, data: Buffer): Promise<number> {
    const h = this.writable(fh);
    return h.kind === 'staged' ? this.staged.write(h, offset, data) : this.writer.write(h, offset, data);
  }

  private writable(fh: number): LocalHandle | StagedHandle {
    const h = this.handles.get(fh);
    if (h.kind === 'blob' || !h.writable) throw new FsError('EBADF', `handle ${fh} is not open for writing`);
    return h;
  }

  async flush(fh: number): Promise<void> {
    const h = this.handles.get(fh);
    if (h.kind === 'local' && h.dirty) await this.writer.commit(h, false);
    if (h.kind === 'staged' && h.dirty) await this.staged.commit(h, false);
  }

  async fsync(fh: number): Promise<void> {
    const h = this.handles.get(fh);
    if (h.kind === 'local' && h.writable) {
      await h.fd.datasync().catch((err) => {
        throw toFsError(err, `fsync ${h.vpath}`);
      });
      if (h.dirty) await this.writer.commit(h, false);
      syncIndex(this.home.db); // the entry is as durable as the bytes
    }
    if (h.kind === 'staged' && h.writable) await this.staged.commit(h, false);
  }

  async release(fh: number): Promise<void> {
    const h: Handle | undefined = this.handles.delete(fh);
    if (h?.kind === 'blob') h.reader.close();
    if (!h || h.kind === 'blob') return;
    if (h.kind === 'staged') return this.staged.release(h);
    try {
      if (h.dirty) await this.writer.commit(h, true);
    } finally {
      this.writer.closed(h);
      // Not awaited: nothing after a release depends on the descriptor being gone (one thread-pool round trip per file).
      void h.fd.close().catch(() => undefined);
    }
  }

  /**
   * fallocate on an open handle. Local and staged files: the disk's own call (any mode it
   * supports: KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE), so SEEK_DATA/SEEK_HOLE answer as on the disk.
   * Content read through the cache: mode 0 only, by extending the size. Throws FsError
   * (ENOTSUP for a mode that cannot be honoured, EBADF, ENOSPC).
   */
  async fallocate(fh: number, mode: number, offset: number, len: number): Promise<void> {
    const h = this.writable(fh);
    const end = offset + len;
    if (fallocateFd(h.fd.fd, mode, offset, len, `fallocate ${h.vpath}`)) {
      h.dirty = true;
      const st = await h.fd.stat();
      this.live.set(h.vpath, st.size, st.mtimeMs);
      return;
    }
    if (mode !== 0) throw new FsError('ENOTSUP', 'fallocate: only plain allocation (mode 0) is supported');
    if (end > (await this.getattr(h.vpath)).size) await this.ftruncate(fh, end);
  }

  /** Truncates through an open handle: its own copy when staged, the real file when local. */
  async ftruncate(fh: number, size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new FsError('EINVAL', `bad size ${size}`);
    const h = this.writable(fh);
    if (h.kind === 'staged') return this.staged.truncateHandle(h, size);
    return this.writer.truncate(h.vpath, size);
  }

  async truncate(path: string, size: number): Promise<void> {
    return this.stagedLocation(path) ? this.staged.truncate(path, size) : this.writer.truncate(path, size);
  }
  // Cloud locations change their namespace through the provider's API; everything else
  // (local disks, write-back disks) through the real filesystem.
  async mkdir(path: string, mode?: number, owner?: Caller): Promise<void> {
    return this.isRemote(path) ? this.remote.mkdir(path) : this.writer.mkdir(path, mode ?? 0o755, owner);
  }
  async rmdir(path: string): Promise<void> {
    return this.isRemote(path) ? this.remote.remove(path, 'dir') : this.writer.remove(path, 'dir');
  }
  async unlink(path: string): Promise<void> {
    return this.isRemote(path) ? this.remote.remove(path, 'file') : this.writer.remove(path, 'file');
  }
  async rename(from: string, to: string, opts?: { noReplace?: boolean; exchange?: boolean }): Promise<void> {
    if (opts?.exchange) {
      if (opts.noReplace) throw new FsError('EINVAL', 'rename: RENAME_NOREPLACE and RENAME_EXCHANGE together');
      // Only a disk swaps two names atomically; a bucket, Drive or a write-back folder's staged copies cannot.
      if (this.isRemote(from) || this.stagedLocation(from) || this.isRemote(to) || this.stagedLocation(to)) {
        throw new FsError('EINVAL', `RENAME_EXCHANGE of ${from}: only local folders written through can swap names atomically`);
      }
      return this.writer.exchange(from, to);
    }
    return this.isRemote(from) ? this.remote.rename(from, to, opts?.noReplace ?? false) : this.writer.rename(from, to, opts?.noReplace ?? false);
  }
  async symlink(target: string, path: string, owner?: Caller): Promise<void> {
    if (this.isRemote(path)) throw new FsError('EPERM', `${path}: this location cannot store symlinks`);
    return this.writer.symlink(target, path, owner);
  }
  async mknod(path: string, mode: number, rdev: number, owner?: Caller): Promise<void> {
    const type = typeOfModeBits(mode);
    if (type === 'file') return this.release(await this.open(path, { write: true, create: true, exclusive: true, mode: mode & 0o7777, owner }));
    if (!type || !isSpecial(type)) throw new FsError('EINVAL', `mknod ${path}: mode ${mode.toString(8)} is not a file, FIFO, socket or device`);
    const t = resolveTarget(this.home, path, 'mknod', (l) => this.featuresOf(l));
    if (t.existing) throw new FsError('EEXIST', `${path} already exists`);
    // Only a disk written through keeps them: a cloud object or a staged upload has no such type.
    if (isStaged(t.location, this.featuresOf(t.location)))
      throw new FsError('EPERM', `${path}: ${this.featuresOf(t.location).localFiles ? 'write-back' : t.location.kind} locations cannot keep FIFOs, sockets or device nodes`);
    return this.writer.mknod(path, mode, rdev, owner);
  }
  async chmod(path: string, mode: number): Promise<void> {
    return this.isRemote(path) ? this.remote.setMeta(path, 'chmod', { mode: mode & 0o7777 }) : this.writer.chmod(path, mode);
  }
  async utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    return this.setTimes(path, msTime(atimeMs), msTime(mtimeMs));
  }
  async setTimes(path: string, atime: TimeSet, mtime: TimeSet): Promise<void> {
    if (!this.isRemote(path)) return this.writer.setTimes(path, atime, mtime);
    // Cloud sources keep one time, the mtime.
    if (mtime === 'omit') return;
    const m = mtime === 'now' ? msTime(Date.now()) : mtime;
    await this.remote.setMeta(path, 'utimens', { mtimeSec: m.sec, mtimeNsec: m.nsec });
    // A handle open for writing (touch opens the file, cp -p sets times before close): its live
    // mtime is what getattr shows until close, and what the close commits.
    this.live.touched(path, m.sec * 1000 + m.nsec / 1e6, mtime === 'now' ? undefined : BigInt(m.sec) * 1_000_000_000n + BigInt(m.nsec));
  }
  async chown(path: string, uid: number, gid: number): Promise<void> {
    if (!this.isRemote(path)) return this.writer.chown(path, uid, gid);
    // No owners there: stat shows the daemon's user; a change to anything else is refused.
    const a = await this.getattr(path);
    if ((uid === -1 || uid === a.uid) && (gid === -1 || gid === a.gid)) return;
    throw new FsError('EPERM', `${path}: this location keeps no owners; its files belong to the daemon's user`);
  }
  async link(from: string, to: string): Promise<void> {
    if (this.isRemote(from) || this.isRemote(to) || this.stagedLocation(from)) {
      throw new FsError('EPERM', `${from}: this location cannot store hard links (link(2) answers EPERM on such filesystems)`);
    }
    return this.writer.link(from, to);
  }

  /** A path in a cloud location (not a disk on this machine). */
  private isRemote(path: string): boolean {
    const name = splitVirtual(path).location;
    const loc = name ? this.home.locations.find(name) : undefined;
    return !!loc && isWritableRemote(this.featuresOf(loc));
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    const attr = await this.getattr(path);
    if (name === XATTR_HASH && attr.hash) return Buffer.from(attr.hash);
    if (name === XATTR_REPLICAS && attr.hash) return Buffer.from(JSON.stringify(this.replicas.list(attr.hash)));
    const pinned = name === XATTR_PINNED ? this.pinnedXattr(path) : undefined;
    if (pinned !== undefined) return Buffer.from(pinned);
    throw new FsError('ENODATA', `${path} has no attribute ${name}`);
  }

  async listxattr(path: string): Promise<string[]> {
    const attr = await this.getattr(path);
    return [...(attr.hash ? [XATTR_HASH, XATTR_REPLICAS] : []), ...(this.pinnedXattr(path) !== undefined ? [XATTR_PINNED] : [])];
  }

  private pinnedXattr(path: string): string | undefined {
    const r = this.resolve(path);
    return r.kind === 'entry' ? this.pins.xattr(r.location, r.rel, r.entry) : undefined;
  }

  async statfs(path: string): Promise<StatFs> {
    let dir = this.home.dir;
    try {
      const r = this.resolve(path);
      if (r.kind === 'entry' && this.isLocal(r.location)) dir = r.location.uri;
    } catch {
      /* statfs of the home for anything not resolvable */
    }
    const s = await fsp.statfs(dir).catch(() => fsp.statfs(this.home.dir));
    return { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, namemax: 255 };
  }

  async getProps(path: string): Promise<DeadProp[]> {
    const r = this.resolve(path);
    if (r.kind !== 'entry') return [];
    this.propStore ??= new PropStore(this.home.db);
    return this.propStore.of(r.entry.id);
  }

  async patchProps(path: string, set: DeadProp[], remove: { ns: string; name: string }[]): Promise<void> {
    const { entry } = this.resolveEntry(path, 'set properties');
    this.propStore ??= new PropStore(this.home.db);
    this.propStore.patch(entry.id, set, remove);
  }

  /** Virtual path of an indexed entry. */
  pathOfEntry(loc: Location, rel: string): string {
    return virtualPath(loc.name, rel);
  }

  async close(): Promise<void> {
    await this.pins.stop();
    for (const [fh] of [...this.handles.all()]) await this.release(fh).catch(() => undefined);
    await this.staged.queue.close();
    this.writer.sync.commitHashes();
    await this.hashPool.close();
    await this.providers.close();
  }
}
