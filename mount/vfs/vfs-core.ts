import { promises as fsp } from 'node:fs';
import type { Logger } from 'pino';
import { HashPool } from '../../index/hash-pool';
import { PropStore } from '../../index/props';
import { shrinkMemory, syncIndex } from '../../index/db';
import { FsError, toFsError } from '../../core/fs-error';
import type { Entry } from '../../index/entries';
import type { Location } from '../../index/locations';
import type { VfsHome } from './vfs-home';
import type { BlockStore } from './blob-reader';
import { HandleTable, cancelFlushCommit, type Handle, type LocalHandle, type StagedHandle } from './handles';
import { LocalWriter } from './local-writer';
import { splitVirtual, virtualPath, type Resolved } from './namespace';
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
import type { Attr, Caller, DeadProp, DirEntry, KernelVfs, NativeBlocks, NotedStat, OpenFlags, PathChange, StatFs, TimeSet } from './types';
import { DiskStats } from './disk-stats';
import { fallocateFd, installNativeDirOpener, msTime } from './posix-calls';
import { xattrValue } from './xattrs';
import { EntryAttrs } from './entry-attrs';
import { ReadOpener, readHandle } from './read-open';
import { FolderAhead, folderAheadLimits } from './folder-ahead';
import { blocksOf, metaChanged, readFdOf, setattrThroughFd, writeFdOf } from './native-paths';

const NO_FEATURES: ProviderFeatures = { write: false, symlinks: false, localFiles: false };

/** How long a flush's commit waits for the close's RELEASE, which commits instead. */
const FLUSH_COMMIT_DELAY_MS = 10;

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
  private readonly attrs: EntryAttrs;
  private readonly reader: ReadOpener;
  /** Fetches the next files of a folder a reader walks (docs/read-pipeline.md). */
  readonly folderAhead: FolderAhead;

  constructor(
    readonly home: VfsHome,
    private readonly opts: VfsCoreOptions,
  ) {
    installNativeDirOpener();
    this.providers = new ProviderPool(opts.openProvider);
    this.resolver = new Resolver(home);
    this.attrs = new EntryAttrs(this);
    const pinned = new PinnedArea(home.cacheDir);
    this.replicas = new Replicas(home, this.providers, pinned);
    this.pins = new Pins(home, pinned, this.replicas, opts.log);
    this.writer = new LocalWriter(this);
    this.reader = new ReadOpener(this, opts.blocks);
    this.folderAhead = new FolderAhead(this.reader, folderAheadLimits(home.config['cache.maxSize']));
    const queue = new UploadQueue(
      home,
      this.providers,
      this.hashPool,
      opts.log,
      (f) => this.staged.isBusy(f),
      (loc, rel, notify) => this.resolver.invalidatePath(virtualPath(loc.name, rel), false, notify),
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
  /** The owner of a write-back folder's staged file (EntryAttrs shows it); undefined: the daemon's. */
  stagedOwner(loc: Location, rel: string, entry: Entry): Caller | undefined {
    return this.staged.ownerOf(loc.id, rel, entry);
  }

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

  /**
   * The location a path is in: its root as the resolver has it (cached: every request asked
   * SQLite, and parsed the row's options, two or three times to route a chmod or utimens).
   */
  private locationOf(path: string): Location | undefined {
    const name = splitVirtual(path).location;
    if (!name) return undefined;
    try {
      const r = this.resolver.resolve(`/${name}`);
      if (r.kind === 'entry') return r.location;
    } catch {
      /* not indexed yet (never scanned), or no such location: SQLite says which */
    }
    return this.home.locations.find(name);
  }

  /** The location a path is in, when it is one of the staged kind (cloud or write-back). */
  private stagedLocation(path: string): boolean {
    const loc = this.locationOf(path);
    return !!loc && isStaged(loc, this.featuresOf(loc));
  }

  /**
   * A write-back folder's file whose newest bytes are only staged: its mode and mtime live in
   * the index until the upload places it (with them). Set on the disk, they would fail (nothing
   * there yet: ENOENT) or land on the old bytes the upload replaces. Asked after isRemote.
   */
  private stagedOnly(path: string): boolean {
    if (!this.stagedLocation(path)) return false;
    let r: Resolved;
    try {
      r = this.resolve(path);
    } catch {
      return false; // the writer answers for a missing name
    }
    return r.kind === 'entry' && r.entry.type === 'file' && this.staged.queue.pending(r.location.id, r.rel) !== undefined;
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
    return this.attrs.getattr(path);
  }

  async readdir(path: string, opts?: { statFiles?: boolean }): Promise<DirEntry[]> {
    return this.attrs.readdir(path, opts);
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
    const h = await this.reader.open(path);
    if (h.kind === 'blob') this.folderAhead.opened(path);
    return this.handles.add(h);
  }

  async read(fh: number, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    const n = await this.readInto(fh, buf, offset);
    return n === length ? buf : buf.subarray(0, n);
  }

  /** Reads into the caller's buffer (FUSE hands us one): no extra copy on the direct path. */
  async readInto(fh: number, buf: Buffer, offset: number): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `bad offset ${offset}`);
    return readHandle(this.handles.get(fh), buf, offset);
  }

  /** See KernelVfs.nativeReadFd (native-paths.ts). Throws EBADF for an unknown handle. */
  nativeReadFd(fh: number): number | undefined {
    return readFdOf(this.handles.get(fh));
  }

  /** See KernelVfs.nativeWriteFd (native-paths.ts). Throws EBADF for an unknown handle. */
  nativeWriteFd(fh: number): number | undefined {
    return writeFdOf(this.handles.get(fh));
  }

  /** See KernelVfs.nativeBlocks (native-paths.ts). Throws EBADF for an unknown handle. */
  nativeBlocks(fh: number): NativeBlocks | undefined {
    return blocksOf(this.handles.get(fh));
  }

  /** Calls `fn` with the path of a block file nativeBlocks handed out, before the cache deletes it. */
  onBlockFileRemoved(fn: (file: string) => void): void {
    this.opts.blocks.onRemoved?.(fn);
  }

  /** See Vfs.shrinkCaches. */
  shrinkCaches(): void {
    shrinkMemory(this.home.db);
  }

  handlePath(fh: number): string {
    return this.handles.get(fh).vpath;
  }

  onChange(fn: (change?: PathChange) => void): void {
    this.resolver.onChange(fn);
  }

  /** Bookkeeping of a write done on nativeWriteFd (what write() does after writing). Throws EBADF. */
  noteWritten(fh: number, offset: number, n: number): void {
    const h = this.writable(fh);
    h.dirty = true;
    this.live.wrote(h.vpath, offset, n, h.append);
  }

  /** See KernelVfs.passthroughWriteFd. */
  passthroughWriteFd(fh: number): number | undefined {
    const h = this.handles.get(fh);
    return h.kind === 'local' && h.writable ? h.fd.fd : undefined;
  }

  /** See KernelVfs.passthroughWriting. */
  passthroughWriting(fh: number): void {
    const h = this.handles.get(fh);
    if (h.kind !== 'local' || !h.writable) return;
    h.passthrough = true;
    h.dirty = true; // its size and mtime come from its descriptor already (LocalWriter follows every writer)
  }

  /** See KernelVfs.nativeMeta: a local file open for reading, or for writing at explicit offsets. Throws EBADF. */
  nativeMeta(fh: number): boolean {
    const h = this.handles.get(fh);
    return h.kind === 'local' && !h.append;
  }

  /** See KernelVfs.noteSetattr. Throws FsError (EBADF). */
  noteSetattr(fh: number, st?: NotedStat): void {
    const h = this.handles.get(fh);
    if (h.kind !== 'local') return;
    if (h.writable) metaChanged(h, this.disk, this.live, st);
    // Through a read-only handle (owner or mode): the index follows the disk, as after a chmod by name.
    else this.writer.sync.noteOwnChange(h.location, h.rel);
  }

  /** See KernelVfs.noteChanged. */
  noteChanged(path: string): void {
    try {
      const r = this.resolve(path);
      if (r.kind === 'entry' && this.featuresOf(r.location).localFiles) this.writer.sync.noteOwnChange(r.location, r.rel);
    } catch {
      /* gone meanwhile: the watcher or the next rescan has it */
    }
  }

  /**
   * See KernelVfs.flushed: the front end answered the flush, so the commit runs behind its
   * reply. Chained on the handle (h.pending): flush, fsync and release wait for it, so the live
   * size stays until the index has the file and fsync never syncs the index before the row.
   */
  flushed(fh: number): void {
    const h = this.handles.get(fh);
    if (h.kind !== 'local' || !h.dirty || h.flushTimer) return;
    // A close's RELEASE follows its FLUSH at once and commits (with the hash): one index write
    // per written file instead of two. A flush without a close (a dup'd descriptor, an editor's
    // save) still commits a moment later.
    h.flushTimer = setTimeout(() => this.commitFlushed(h), FLUSH_COMMIT_DELAY_MS);
  }

  private commitFlushed(h: LocalHandle): void {
    h.flushTimer = undefined;
    const prev = h.pending;
    const p: Promise<void> = (async () => {
      if (prev) await prev;
      if (h.dirty) await this.writer.commit(h, false);
    })()
      .catch((err: unknown) => this.opts.log?.warn({ err, path: h.vpath }, 'index commit after a flush failed; the next flush, close or rescan catches up'))
      .finally(() => {
        if (h.pending === p) h.pending = undefined;
      });
    h.pending = p;
  }

  /** See KernelVfs.setattrOpen (native-paths.ts). Throws FsError (EPERM, EBADF). */
  setattrOpen(fh: number, change: { uid: number; gid: number; mode?: number; atime: TimeSet; mtime: TimeSet }): boolean {
    return setattrThroughFd(this.handles.get(fh), change, this.disk, this.live);
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
    if (h.kind === 'local') cancelFlushCommit(h);
    if (h.kind === 'local' && h.pending) await h.pending;
    if (h.kind === 'local' && h.dirty) await this.writer.commit(h, false);
    if (h.kind === 'staged' && h.dirty) await this.staged.commit(h, false);
  }

  async fsync(fh: number): Promise<void> {
    const h = this.handles.get(fh);
    if (h.kind === 'local' && h.writable) {
      cancelFlushCommit(h);
      if (h.pending) await h.pending;
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
    cancelFlushCommit(h);
    try {
      if (h.pending) await h.pending;
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

  async truncate(path: string, size: number, kernel = false): Promise<void> {
    return this.stagedLocation(path) ? this.staged.truncate(path, size, kernel) : this.writer.truncate(path, size, kernel);
  }
  // Cloud locations change their namespace through the provider's API; everything else
  // (local disks, write-back disks) through the real filesystem.
  async mkdir(path: string, mode?: number, owner?: Caller, kernel = false): Promise<void> {
    return this.isRemote(path) ? this.remote.mkdir(path, kernel) : this.writer.mkdir(path, mode ?? 0o755, owner, kernel);
  }
  async rmdir(path: string, kernel = false): Promise<void> {
    return this.isRemote(path) ? this.remote.remove(path, 'dir', kernel) : this.writer.remove(path, 'dir', kernel);
  }
  async unlink(path: string, kernel = false): Promise<void> {
    return this.isRemote(path) ? this.remote.remove(path, 'file', kernel) : this.writer.remove(path, 'file', kernel);
  }
  async rename(from: string, to: string, opts?: { noReplace?: boolean; exchange?: boolean; kernel?: boolean }): Promise<void> {
    if (opts?.exchange) {
      if (opts.noReplace) throw new FsError('EINVAL', 'rename: RENAME_NOREPLACE and RENAME_EXCHANGE together');
      // Only a disk swaps two names atomically; a bucket, Drive or a write-back folder's staged copies cannot.
      if (this.isRemote(from) || this.stagedLocation(from) || this.isRemote(to) || this.stagedLocation(to)) {
        throw new FsError('EINVAL', `RENAME_EXCHANGE of ${from}: only local folders written through can swap names atomically`);
      }
      return this.writer.exchange(from, to, opts.kernel);
    }
    return this.isRemote(from) ? this.remote.rename(from, to, opts?.noReplace ?? false, opts?.kernel) : this.writer.rename(from, to, opts?.noReplace ?? false, opts?.kernel);
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
  async chmod(path: string, mode: number, kernel = false): Promise<void> {
    return this.isRemote(path) || this.stagedOnly(path) ? this.remote.setMeta(path, 'chmod', { mode: mode & 0o7777 }, kernel) : this.writer.chmod(path, mode, kernel);
  }
  async utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    return this.setTimes(path, msTime(atimeMs), msTime(mtimeMs));
  }
  async setTimes(path: string, atime: TimeSet, mtime: TimeSet, kernel = false): Promise<void> {
    if (!this.isRemote(path) && !this.stagedOnly(path)) return this.writer.setTimes(path, atime, mtime, kernel);
    // Cloud sources keep one time, the mtime (and a write-back folder's staged file, until its upload lands).
    if (mtime === 'omit') return;
    const m = mtime === 'now' ? msTime(Date.now()) : mtime;
    await this.remote.setMeta(path, 'utimens', { mtimeSec: m.sec, mtimeNsec: m.nsec }, kernel);
    // A handle open for writing (touch opens the file, cp -p sets times before close): its live
    // mtime is what getattr shows until close, and what the close commits.
    this.live.touched(path, m.sec * 1000 + m.nsec / 1e6, mtime === 'now' ? undefined : BigInt(m.sec) * 1_000_000_000n + BigInt(m.nsec));
  }
  async chown(path: string, uid: number, gid: number, kernel = false): Promise<void> {
    if (!this.isRemote(path)) {
      // A write-back folder's staged bytes carry their owner to the disk (StagedOwners).
      if (this.stagedLocation(path) && (await this.staged.chown(path, uid, gid, kernel))) return;
      return this.writer.chown(path, uid, gid, kernel);
    }
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
    const loc = this.locationOf(path);
    return !!loc && isWritableRemote(this.featuresOf(loc));
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    return xattrValue(path, name, await this.getattr(path), this.replicas, () => this.pinnedXattr(path));
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
    this.folderAhead.stop();
    await this.pins.stop();
    for (const [fh] of [...this.handles.all()]) await this.release(fh).catch(() => undefined);
    await this.staged.queue.close();
    this.writer.sync.hashes.commitHashes();
    await this.hashPool.close();
    await this.providers.close();
  }
}
