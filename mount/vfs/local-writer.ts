import { constants as C, fstatSync, promises as fsp, type BigIntStats } from 'node:fs';
import { FsError, toFsError } from '../../core/fs-error';
import type { Entry } from '../../index/entries';
import type { Location } from '../../index/locations';
import { localVersion } from '../../core/local-stat';
import { fdPath, nameOps, openBeneath, openFileBeneath, withParent } from '../../core/beneath';
import type { LocalHandle } from './handles';
import { writeAll } from './live-sizes';
import { checkRenameAncestry, isStaged, resolveEntryTarget, resolveTarget, type EntryTarget, type Target } from './targets';
import type { Caller, OpenFlags, TimeSet } from './types';
import { mknodAt, setTimesAt, renameExchangeAt } from './posix-calls';
import { moveOpenFiles, stagedPaths, type WriterHost } from './writer-host';
import { IndexRefresh, lstatQuiet } from './index-refresh';
import { groupedWrite } from '../../index/commit-group';
import { adoptCreated, onInode } from './local-inode';

/**
 * The write side for local locations: every change goes to the real file or directory
 * first, then the index follows from what the filesystem reports (lstat), in one
 * transaction with its change-log row. Files written through a handle are re-hashed off
 * the event loop after close. Cloud locations (staging + upload queue) plug in here later.
 */
export class LocalWriter {
  /** The index follows the disk through this (and re-hashes written files). */
  readonly sync: IndexRefresh;

  constructor(private readonly core: WriterHost) {
    this.sync = new IndexRefresh(core);
  }

  private get home() {
    return this.core.home;
  }

  /** Local-disk targets only: other kinds go through the staged writer. */
  private target(path: string, what: string): Target {
    const t = resolveTarget(this.home, path, what, (l) => this.core.featuresOf(l), this.core.resolver);
    if (!this.core.featuresOf(t.location).localFiles) throw new FsError('EROFS', `${what} ${path}: ${t.location.kind} locations take new content through staging only`);
    return t;
  }

  /** The entry a chmod, chown or utimens changes (a location's root too). */
  private entryTarget(path: string, what: string): EntryTarget {
    const t = resolveEntryTarget(this.home, path, what, (l) => this.core.featuresOf(l), this.core.resolver);
    if (!this.core.featuresOf(t.location).localFiles) throw new FsError('EROFS', `${what} ${path}: ${t.location.kind} locations keep modes and times in the index`);
    return t;
  }

  /** Makes the index entry at `rel` match the disk (see IndexRefresh.refresh); the watcher's way in. */
  refresh(loc: Location, rel: string, siblings = true, parent = false): Promise<Entry | undefined> {
    return this.sync.refresh(loc, rel, siblings, parent);
  }

  /** The index entry at `rel` already says what the disk says, by one lstat (see IndexRefresh.unchanged). Never throws. */
  unchanged(loc: Location, rel: string): boolean {
    return this.sync.unchanged(loc, rel);
  }

  async openForWrite(path: string, flags: OpenFlags): Promise<LocalHandle> {
    const t = this.target(path, 'open');
    if (t.existing?.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    // The kernel opens a FIFO or device of the mount itself; an open from WebDAV would block or write a device.
    if (t.existing && t.existing.type !== 'file' && t.existing.type !== 'symlink') throw new FsError('EPERM', `${path} is a ${t.existing.type}: it has no content to write`);
    // The kernel opens only names it holds: one the index no longer has (removed on the disk, seen
    // by a refresh that did not tell the kernel) gets ESTALE, so the kernel looks it up again.
    if (!t.existing && !flags.create) throw flags.kernel ? new FsError('ESTALE', `${path} is gone; look it up again`) : new FsError('ENOENT', `${path}: no such file`);
    if (t.existing && flags.create && flags.exclusive) throw new FsError('EEXIST', `${path} already exists`);
    let mode = (flags.write || flags.truncate || flags.append ? C.O_RDWR : C.O_RDONLY) | C.O_NOFOLLOW;
    if (flags.create) mode |= C.O_CREAT | (flags.exclusive ? C.O_EXCL : 0);
    if (flags.truncate) mode |= C.O_TRUNC;
    if (flags.append) mode |= C.O_APPEND;
    // The folder's fstat right after a create in it: its probe, unless the index changed since
    // before the open (another refresh may have applied a newer state of the folder meanwhile).
    const folder: { stat?: BigIntStats } = {};
    const changes = this.core.resolver.changes;
    const open = (m: number) =>
      openFileBeneath(t.location.uri, t.rel, m, flags.mode ?? 0o644, m & C.O_CREAT ? folder : undefined).catch((err) => {
        throw toFsError(err, `open ${path}`);
      });
    // Only a file this open really made gets the caller's owner and mode: one already on the
    // disk but not indexed yet (the watcher is behind) keeps its own, as open(2) would.
    let made = false;
    let fd: Awaited<ReturnType<typeof open>> | undefined;
    if (!t.existing && flags.create && !flags.exclusive) {
      fd = await open(mode | C.O_EXCL).then(
        (f) => {
          made = true;
          return f;
        },
        (err: FsError) => {
          if (err.code === 'EEXIST') return undefined;
          throw err;
        },
      );
    }
    if (!fd) {
      fd = await open(mode).catch(async (err: FsError) => {
        if (err.code !== 'ENOENT' || !t.existing || flags.create) throw err;
        // Indexed, but removed on the disk before the watcher told us: the index forgets it now.
        // A kernel front end gets ESTALE: the kernel then looks the name up again (LOOKUP_REVAL),
        // finds it gone and creates it when the caller asked O_CREAT (which FUSE's OPEN never
        // carries), as on a disk. Before, such an open failed ENOENT until the watcher caught up.
        await this.sync.refresh(t.location, t.rel, true, true);
        throw flags.kernel ? new FsError('ESTALE', `${path} was removed on the disk; look it up again`, err) : err;
      });
      made = !t.existing && !!flags.exclusive;
    }
    let opened = false;
    try {
      // Exact: the real file's mtime in nanoseconds (a millisecond double showed it ~100 ns off).
      let pre = fstatSync(fd.fd, { bigint: true });
      if (made && (await adoptCreated(t, flags.mode, flags.owner, fd, pre))) pre = fstatSync(fd.fd, { bigint: true });
      const refreshed = !(t.existing && !flags.create && !flags.truncate);
      // Open for writing before the refresh: it then does not hash the file (its bytes are not final).
      this.core.live.opened(path, Number(pre.size), Number(pre.mtimeNs / 1000n) / 1000, pre);
      // The real file's fstat, not the time JS noted a write, is what getattr shows while open:
      // the kernel stamps mtime at the write, and `stat` after `close` (whose RELEASE may still
      // be queued) must show what the disk will keep.
      this.core.live.follow(path, fd.fd, { dev: pre.dev, ino: pre.ino });
      opened = true;
      // The descriptor just opened beneath the location is what the name holds: its fstat is the
      // probe (a change on the disk since then waits for this handle's close, which probes by name).
      const ownFolder = made && this.core.resolver.changes === changes ? folder.stat : undefined;
      const entry = refreshed ? await this.sync.refresh(t.location, t.rel, true, !t.existing, !!flags.kernel, { own: pre, ownFolder }) : t.existing;
      if (!entry) throw new FsError('ENOENT', `${path}: vanished while being opened`);
      return { kind: 'local', fd, vpath: path, location: t.location, rel: t.rel, entryId: entry.id, writable: true, append: !!flags.append, dirty: false, kernel: !!flags.kernel };
    } catch (err) {
      if (opened) this.core.live.closed(path, fd.fd);
      await fd.close().catch(() => undefined);
      throw err;
    }
  }

  async write(h: LocalHandle, offset: number, data: Buffer): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `bad offset ${offset}`);
    const done = await writeAll(h.fd, data, h.append ? null : offset, `write ${h.vpath}`);
    h.dirty = true;
    this.core.live.wrote(h.vpath, offset, done, h.append);
    return done;
  }

  /** Brings the index up to date with a written file (on flush, fsync and close). */
  async commit(h: LocalHandle, releasing: boolean): Promise<void> {
    // A passthrough writer's writes never reach us: every flush and close refreshes.
    h.dirty = !!h.passthrough;
    if (!releasing) {
      const st = fstatSync(h.fd.fd, { bigint: true });
      this.core.live.set(h.vpath, Number(st.size), Number(st.mtimeNs / 1000n) / 1000, st.mtimeNs);
    }
    // The last writer's close: a small file's hash goes in with the entry (one index write, not two).
    const last = releasing && this.core.live.writers(h.vpath) === 1;
    const hash = last ? this.sync.hashes.hashClosing(h.location, h.rel, h.fd.fd) : undefined;
    await this.sync.refresh(h.location, h.rel, true, false, !!h.kernel, { hash });
  }

  closed(h: LocalHandle): void {
    if (!h.writable) return;
    this.core.live.closed(h.vpath, h.fd.fd);
    // The last writer closed: the bytes are final, hash them now (refresh skipped it while open).
    if (this.core.live.has(h.vpath)) return;
    const e = this.sync.indexed(h.location, h.rel);
    if (e?.type === 'file' && !e.hash && !stagedPaths(this.core, h.location).pending(h.location.id, h.rel))
      this.sync.hashes.hashClosed(h.location, h.rel, h.fd.fd, e.size, !!h.kernel);
  }

  async truncate(path: string, size: number, kernel = false): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new FsError('EINVAL', `bad size ${size}`);
    const t = this.target(path, 'truncate');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such file`);
    if (t.existing.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    // O_NONBLOCK: a FIFO planted under the name must not block the open.
    const fh = await openBeneath(t.location.uri, t.rel, C.O_WRONLY | C.O_NONBLOCK).catch((err) => {
      throw toFsError(err, `truncate ${path}`);
    });
    try {
      await fh.truncate(size).catch((err) => {
        throw toFsError(err, `truncate ${path}`);
      });
    } finally {
      await fh.close().catch(() => undefined);
    }
    this.core.live.set(path, size);
    await this.sync.refresh(t.location, t.rel, true, false, kernel);
  }

  /** `kernel`: see Vfs.mkdir (the index commit starts no invalidation sweep). */
  async mkdir(path: string, mode: number, owner?: Caller, kernel = false): Promise<void> {
    const t = this.target(path, 'mkdir');
    if (t.existing) throw new FsError('EEXIST', `${path} already exists`);
    await withParent(t.location.uri, t.rel, (at) => nameOps(t.location.uri).mkdir(at, mode)).catch((err) => {
      throw toFsError(err, `mkdir ${path}`);
    });
    await adoptCreated(t, mode, owner);
    await this.sync.refresh(t.location, t.rel, true, true, kernel);
  }

  /** `kernel`: see Vfs.rmdir (the index commit starts no invalidation sweep). */
  async remove(path: string, expect: 'file' | 'dir', kernel = false): Promise<void> {
    const t = this.target(path, expect === 'dir' ? 'rmdir' : 'unlink');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    if (expect === 'dir' && t.existing.type !== 'dir') throw new FsError('ENOTDIR', `${path} is not a directory`);
    if (expect === 'file' && t.existing.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    const queue = stagedPaths(this.core, t.location);
    // Held to the end: no upload of the path starts before its rows are dropped.
    const release = await queue.hold(t.location.id, t.rel);
    try {
      // Staged files not written to the disk yet still make their directory non-empty.
      if (expect === 'dir' && queue.hasUnder(t.location.id, t.rel)) throw new FsError('ENOTEMPTY', `${path} is not empty`);
      const linked = this.core.disk.get(t.existing.id);
      const ops = nameOps(t.location.uri);
      await withParent(t.location.uri, t.rel, (at) => (expect === 'dir' ? ops.rmdir(at) : ops.unlink(at))).catch((err) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toFsError(err, `remove ${path}`);
      });
      await queue.cancel(t.location.id, t.rel);
      this.core.staged.detach(path);
      await this.sync.refresh(t.location, t.rel, true, true, kernel, { gone: true });
      // The file's other names lost a link (and their ctime changed).
      if (linked && linked.nlink > 1) await this.sync.refreshSiblings(t.location, t.existing.id, linked);
    } finally {
      release();
    }
  }

  /** `kernel`: see Vfs.rename (the index commits start no invalidation sweep). */
  async rename(from: string, to: string, noReplace: boolean, kernel = false): Promise<void> {
    const a = this.target(from, 'rename');
    const b = this.target(to, 'rename');
    if (!a.existing) throw new FsError('ENOENT', `${from}: no such entry`);
    if (a.location.id !== b.location.id) throw new FsError('EXDEV', `rename across locations (${a.location.name} -> ${b.location.name}): copy instead`);
    if (a.rel === b.rel) return;
    checkRenameAncestry(a, b, from, to, noReplace);
    // As rename(2), from the index: a target that exists only staged (write-back) is not on
    // the disk yet, so the disk's own rename would not see it.
    if (b.existing && a.existing.type === 'dir' && b.existing.type !== 'dir') throw new FsError('ENOTDIR', `${to} is not a directory`);
    if (b.existing && a.existing.type !== 'dir' && b.existing.type === 'dir') throw new FsError('EISDIR', `${to} is a directory`);
    const root = a.location.uri;
    const lstatVersion = (rel: string) => withParent(root, rel, (at) => fsp.lstat(at, { bigint: true })).then(localVersion, () => null);
    if (noReplace) {
      const exists = (await lstatVersion(b.rel)) !== null;
      if (exists || b.existing) throw new FsError('EEXIST', `${to} already exists`);
    }
    const queue = stagedPaths(this.core, a.location);
    // Both names held until rows and entries moved: an upload starting after we saw the file
    // as only staged would land at the old name, behind the moved entry's back.
    const releaseA = await queue.hold(a.location.id, a.rel);
    const releaseB = await queue.hold(b.location.id, b.rel);
    // A replaced file with other names: they lose a link (as for unlink).
    const replaced = b.existing && b.existing.type !== 'dir' ? this.core.disk.get(b.existing.id) : undefined;
    try {
      const pendingOnly = !!queue.pending(a.location.id, a.rel) && (await lstatVersion(a.rel)) === null;
      if (b.existing?.type === 'dir' && queue.hasUnder(b.location.id, b.rel)) throw new FsError('ENOTEMPTY', `${to} is not empty`);
      if (!pendingOnly) {
        // Both names inside their safely opened parents: no directory on either side is followed.
        // Within one folder (`rsync -a`'s temporary name to the final one) it is opened once.
        const move =
          a.parentRel === b.parentRel
            ? withParent(root, a.rel, (atA, dir) => nameOps(root).rename(atA, fdPath(dir, b.name)))
            : withParent(root, a.rel, (atA) => withParent(root, b.rel, (atB) => nameOps(root).rename(atA, atB)));
        await move.catch((err) => {
          throw toFsError(err, `rename ${from}`);
        });
      }
      // Whatever was staged for the replaced target is gone with it; staged bytes of the moved
      // file follow it, based on what the disk holds at the new name when they only exist staged.
      await queue.cancel(b.location.id, b.rel);
      this.core.staged.detach(to);
      const baseAtB = pendingOnly ? await lstatVersion(b.rel) : undefined;
      queue.move(a.location.id, a.rel, b.rel, (rel) => (rel === b.rel ? baseAtB : undefined));
      const { entries } = this.home;
      const moveRow = () => {
        const moving = entries.get(a.existing!.id);
        if (moving) entries.move(moving, b.parent.id, b.name, a.rel, b.rel);
      };
      this.commitMove(a.location, moveRow);
      this.forgetMoved(from, to, a.existing.type === 'dir' || b.existing?.type === 'dir', kernel);
      moveOpenFiles(this.core, [from, to]);
      this.sync.hashes.moved(b.location, a.rel, b.rel);
      await this.sync.refresh(b.location, b.rel, true, true, kernel);
      // The refresh above brought the new name's folder up to date: `rsync -a` renames within one.
      if (a.parent.id !== b.parent.id) await this.sync.refreshParent(a.location, a.rel, kernel);
      if (replaced && replaced.nlink > 1) await this.sync.refreshSiblings(b.location, b.existing!.id, replaced);
    } finally {
      releaseB();
      releaseA();
    }
  }

  /**
   * renameat2(RENAME_EXCHANGE) inside one local location: both names swap on the disk atomically
   * (each inside its safely opened parent, nothing followed), then in the index, keeping both
   * entries (ids, hashes, subtrees): through a temporary name, in one transaction.
   */
  async exchange(from: string, to: string, kernel = false): Promise<void> {
    const a = this.target(from, 'rename');
    const b = this.target(to, 'rename');
    if (!a.existing || !b.existing) throw new FsError('ENOENT', `${a.existing ? to : from}: no such entry`);
    if (a.location.id !== b.location.id) throw new FsError('EXDEV', `rename across locations (${a.location.name} -> ${b.location.name}): copy instead`);
    if (a.rel === b.rel) return;
    const inside = (x: string, y: string) => (y + '/').startsWith(x + '/');
    if (inside(a.rel, b.rel) || inside(b.rel, a.rel)) throw new FsError('EINVAL', `cannot exchange ${from} with a name inside it`);
    const root = a.location.uri;
    await withParent(root, a.rel, (atA) => withParent(root, b.rel, async (atB) => renameExchangeAt(atA, atB, `rename ${from}`)));
    const { entries } = this.home;
    const [ea, eb] = [a.existing, b.existing];
    const tmp = `.vdfs-exchange-${ea.id}`;
    const tmpRel = a.parentRel === '' ? tmp : `${a.parentRel}/${tmp}`;
    this.commitMove(a.location, () => {
      entries.move(ea, a.parent.id, tmp, a.rel, tmpRel);
      entries.move(eb, a.parent.id, a.name, b.rel, a.rel);
      entries.move(ea, b.parent.id, b.name, tmpRel, b.rel);
    });
    this.forgetMoved(from, to, ea.type === 'dir' || eb.type === 'dir', kernel);
    // Both at once: a parked name in between (with a NUL) failed the handles' path check, so an
    // exchange with a file open for writing answered EINVAL after the disk had swapped them.
    moveOpenFiles(this.core, [from, to], [to, from]);
    // With their other names (hard links): the swap changed both inodes' ctime.
    await this.sync.refresh(a.location, a.rel, true, false, kernel);
    await this.sync.refresh(b.location, b.rel, true, false, kernel);
    await this.sync.refreshParent(a.location, a.rel, kernel);
    if (a.parent.id !== b.parent.id) await this.sync.refreshParent(b.location, b.rel, kernel);
  }

  /**
   * The index rows of a rename or exchange. Written through: they join the group of relaxed
   * commits, as the refreshes around them do (a rescan rebuilds what a killed process lost;
   * the disk's own rename is not fsynced either). `rsync -a` renames every file it writes, and
   * a commit of its own per rename was ~0.3 ms of it. A staged name was acknowledged durable,
   * as its queue rows are: a full commit.
   */
  private commitMove(loc: Location, fn: () => void): void {
    if (isStaged(loc, this.core.featuresOf(loc))) this.home.db.transaction(fn).immediate();
    else groupedWrite(this.home.db, fn);
  }

  /**
   * After a rename or exchange: the resolver forgets both names, and everything below them when
   * a folder moved or was replaced (below a file only misses are cached, as after a create).
   * One rename used to drop the whole cache, and with it every kept listing: an `rsync -a`
   * renames each file it writes. `kernel`: no invalidation sweep (see Vfs.rename).
   */
  private forgetMoved(from: string, to: string, folders: boolean, kernel: boolean): void {
    this.core.resolver.invalidatePath(from, folders, !kernel);
    this.core.resolver.invalidatePath(to, folders, !kernel);
  }

  async symlink(targetText: string, path: string, owner?: Caller): Promise<void> {
    const t = this.target(path, 'symlink');
    if (t.existing) throw new FsError('EEXIST', `${path} already exists`);
    await withParent(t.location.uri, t.rel, (at) => nameOps(t.location.uri).symlink(targetText, at)).catch((err) => {
      throw toFsError(err, `symlink ${path}`);
    });
    await adoptCreated(t, undefined, owner);
    await this.sync.refresh(t.location, t.rel, true, true);
  }

  /**
   * mknod(2) of a FIFO, socket or device node (`mode` holds the type bits, `rdev` the device
   * number) inside the safely opened parent; then owner and mode as for any created name. The
   * kernel checked the caller may (CAP_MKNOD for devices); the disk checks again.
   */
  async mknod(path: string, mode: number, rdev: number, owner?: Caller): Promise<void> {
    const t = this.target(path, 'mknod');
    if (t.existing) throw new FsError('EEXIST', `${path} already exists`);
    await withParent(t.location.uri, t.rel, async (at) => mknodAt(at, mode, rdev, `mknod ${path}`));
    await adoptCreated(t, mode & 0o7777, owner);
    await this.sync.refresh(t.location, t.rel);
    await this.sync.refreshParent(t.location, t.rel);
  }

  /** link(2) inside one location: both names in their safely opened parents; the source is never followed. */
  async link(from: string, to: string): Promise<void> {
    const a = this.target(from, 'link');
    const b = this.target(to, 'link');
    if (!a.existing) throw new FsError('ENOENT', `${from}: no such entry`);
    if (a.location.id !== b.location.id) throw new FsError('EXDEV', `link across locations (${a.location.name} -> ${b.location.name})`);
    if (a.existing.type === 'dir') throw new FsError('EPERM', `${from} is a directory: directories cannot be hard-linked`);
    if (b.existing) throw new FsError('EEXIST', `${to} already exists`);
    const root = a.location.uri;
    await withParent(root, a.rel, (atA) => withParent(root, b.rel, (atB) => nameOps(root).link(atA, atB))).catch((err) => {
      throw toFsError(err, `link ${from}`);
    });
    await this.sync.refresh(b.location, b.rel, true, true);
    await this.sync.refresh(a.location, a.rel);
  }

  /** `kernel` (here and in setTimes and chown): see Vfs.chmod (the index commit starts no invalidation sweep). */
  async chmod(path: string, mode: number, kernel = false): Promise<void> {
    const t = this.entryTarget(path, 'chmod');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    await onInode(t, 'chmod', (p) => fsp.chmod(p, mode & 0o7777));
    await this.sync.refresh(t.location, t.rel, true, false, kernel);
  }

  /** utimensat without following a symlink at the name (its own times), exact to the nanosecond. */
  async setTimes(path: string, atime: TimeSet, mtime: TimeSet, kernel = false): Promise<void> {
    const t = this.entryTarget(path, 'utimens');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    let before: BigIntStats | undefined;
    if (t.rel === '') await setTimesAt(`${t.location.uri}/.`, atime, mtime, `utimens ${path}`);
    else
      await withParent(t.location.uri, t.rel, (at) => {
        // What the file was right before: its hash stays valid if nothing but the times moves.
        before = t.existing?.type === 'file' && !this.core.live.has(path) ? lstatQuiet(at) : undefined;
        return setTimesAt(at, atime, mtime, `utimens ${path}`);
      });
    if (mtime !== 'omit') {
      if (mtime === 'now') this.core.live.touched(path, Date.now());
      else this.core.live.touched(path, mtime.sec * 1000 + mtime.nsec / 1e6, BigInt(mtime.sec) * 1_000_000_000n + BigInt(mtime.nsec));
    }
    await this.sync.refresh(t.location, t.rel, true, false, kernel, { retimedFrom: before });
  }

  /** lchown (-1 keeps an id): the disk decides who may (root; the owner to one of their groups). */
  async chown(path: string, uid: number, gid: number, kernel = false): Promise<void> {
    const t = this.entryTarget(path, 'chown');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    const run = (p: string) =>
      fsp.lchown(p, uid, gid).catch((err) => {
        throw toFsError(err, `chown ${path}`);
      });
    if (t.rel === '') await run(`${t.location.uri}/.`);
    else await withParent(t.location.uri, t.rel, run);
    await this.sync.refresh(t.location, t.rel, true, false, kernel);
  }
}
