import { constants as C, fstatSync, lstatSync, promises as fsp, readlinkSync, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { FsError, toFsError } from '../../core/fs-error';
import { noteSwallowed } from '../../core/swallowed';
import type { Entry, EntryFields } from '../../index/entries';
import type { Location } from '../../index/locations';
import { relaxedTransaction } from '../../index/db';
import type { FileHash } from '../../index/hash-pool';
import { entryFromStats, localVersion } from '../../core/local-stat';
import { fdPath, openBeneath, pathHandle, withParent } from '../../core/beneath';
import type { LocalHandle } from './handles';
import { writeAll } from './live-sizes';
import { splitVirtual, virtualPath } from './namespace';
import { checkRenameAncestry, resolveTarget, type Target } from './targets';
import type { Caller, OpenFlags, TimeSet } from './types';
import { mknodAt, setTimesAt, S_ISGID, renameExchangeAt } from './posix-calls';
import type { WriterHost } from './writer-host';

/** True when the index entry already says what the disk says (applying it would write nothing). */
/** How long computed hashes wait to be committed together. */
const HASH_COMMIT_MS = 20;

function same(e: Entry | undefined, f: EntryFields | undefined): boolean {
  if (!e || !f) return !e && !f;
  return (
    e.type === f.type && e.size === f.size && e.mtimeSec === f.mtimeSec && e.mtimeNsec === f.mtimeNsec && e.mode === f.mode && e.version === f.version && e.target === f.target
  );
}

/**
 * The write side for local locations: every change goes to the real file or directory
 * first, then the index follows from what the filesystem reports (lstat), in one
 * transaction with its change-log row. Files written through a handle are re-hashed off
 * the event loop after close. Cloud locations (staging + upload queue) plug in here later.
 */
export class LocalWriter {
  private readonly rehashing = new Set<string>();
  private readonly rehashAgain = new Set<string>();
  private readonly hashed: { loc: Location; rel: string; r: FileHash }[] = [];
  private hashedTimer?: NodeJS.Timeout;

  constructor(private readonly core: WriterHost) {}

  private get home() {
    return this.core.home;
  }

  /** Local-disk targets only: other kinds go through the staged writer. */
  private target(path: string, what: string): Target {
    const t = resolveTarget(this.home, path, what, (l) => this.core.featuresOf(l));
    if (!this.core.featuresOf(t.location).localFiles) throw new FsError('EROFS', `${what} ${path}: ${t.location.kind} locations take new content through staging only`);
    return t;
  }

  /**
   * Makes the index entry at `rel` match the real filesystem (insert, update or remove).
   * The hash is kept only while the version (inode, size, mtime) is unchanged. With
   * `parent`, the directory holding `rel` is brought up to date in the same commit (a name in
   * it came or went): one commit per created file instead of two.
   */
  async refresh(loc: Location, rel: string, siblings = true, parent = false): Promise<Entry | undefined> {
    // Staged bytes not uploaded yet are newer than the disk: the entry describes them.
    if (this.core.staged.queue.pending(loc.id, rel)) {
      if (parent) await this.refreshParent(loc, rel);
      return this.home.entries.resolve(loc.id, rel);
    }
    const parentRel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    const [self, up] = await Promise.all([this.probe(loc, rel), parent && rel !== '' ? this.probe(loc, parentRel).catch(() => undefined) : undefined]);
    const { entries } = this.home;
    // The parent's lookup walks from the root; the child is then one query. Inside the write
    // transaction both are read again by id (another process may have committed meanwhile).
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    const lookup = (dirId?: number) => {
      const dir = rel === '' ? undefined : dirId === undefined ? this.indexed(loc, parentRel) : (entries.get(dirId) ?? entries.resolve(loc.id, parentRel));
      return { dir, entry: rel === '' ? entries.root(loc.id) : dir?.type === 'dir' ? entries.child(dir.id, name) : undefined };
    };
    let { dir: upEntry, entry: existing } = lookup();
    let r: { entry?: Entry; wasDir: boolean; changed: boolean } = { wasDir: false, changed: false };
    let upChanged = false;
    const apply = () => {
      if (up) upChanged = this.apply(loc, parentRel, up, upEntry, undefined).changed;
      r = this.apply(loc, rel, self, existing, upEntry);
    };
    // Nothing differs from the index (a chown to the same owner, a flush without new bytes):
    // no commit (apply then only reads).
    if (same(existing, self.fields) && (!up || same(upEntry, up.fields))) apply();
    else
      relaxedTransaction(this.home.db, () => {
        ({ dir: upEntry, entry: existing } = lookup(upEntry?.id));
        // Again inside the transaction: a write may have been staged while the disk was probed.
        if (this.core.staged.queue.pending(loc.id, rel)) {
          r = { entry: existing, wasDir: false, changed: false };
          return;
        }
        apply();
      });
    const result = r.entry;
    const wasDir = r.wasDir;
    // Only this path changed, unless a directory went away or became something else. Nothing
    // committed (a flush without new bytes, the watcher seeing our own write): the cache and the
    // kernel's view are still right, and no invalidation sweep is started for it.
    if (r.changed) {
      const vpath = virtualPath(loc.name, rel);
      this.core.resolver.invalidatePath(vpath, wasDir && result?.type !== 'dir');
      // The next lookup (CREATE's reply, the kernel's GETATTR) finds the row just written.
      if (result) this.core.resolver.prime(vpath, { kind: 'entry', location: loc, entry: result, rel });
    }
    if (upChanged) this.core.resolver.invalidatePath(virtualPath(loc.name, parentRel), false);
    const entry = result as Entry | undefined;
    // The index now has the disk's mode: a mode changed through an open descriptor is no longer shown from memory.
    if (entry?.type === 'file') this.core.live.indexed(virtualPath(loc.name, rel));
    if (entry && self.disk) {
      this.core.disk.set(entry.id, self.disk);
      // Hard links: the other names of this file changed with it (mode, times, size, links).
      if (siblings && self.disk.nlink > 1n) await this.refreshSiblings(loc, entry.id, self.disk);
    }
    if (up?.disk && upEntry) this.core.disk.set(upEntry.id, up.disk);
    if (entry?.type === 'file' && !entry.hash) this.rehash(loc, rel);
    return entry;
  }

  /**
   * The index entry at `rel`, through the resolver's cache (a parent directory is nearly always
   * there); a walk from the location root only on a miss. Callers that write re-read it by id.
   */
  private indexed(loc: Location, rel: string): Entry | undefined {
    try {
      const r = this.core.resolver.resolve(virtualPath(loc.name, rel));
      if (r.kind === 'entry' && r.location.id === loc.id) return r.entry;
    } catch {
      /* not resolvable by name (hidden, or gone): ask the index itself */
    }
    return this.home.entries.resolve(loc.id, rel);
  }

  /** What the disk says of `rel` (lstat inside its safely opened parent); no fields when it is not there. */
  private async probe(loc: Location, rel: string): Promise<{ fields?: EntryFields; disk?: BigIntStats }> {
    let fields: EntryFields | undefined;
    let disk: BigIntStats | undefined;
    // A vdfs state folder is "not there" for the index: an entry left from before is removed.
    if (!this.home.hidden.hides(loc.uri, rel))
      try {
        // lstat of the name inside its parent, opened without following symlinks: a path through
        // a swapped-in symlink is "not there" for the index, never the file outside.
        const pe =
          rel === ''
            ? entryFromStats('', (disk = await fsp.stat(loc.uri, { bigint: true })))
            : // Synchronous: the lstat of a name inside its open parent is answered from the dentry
              // and inode caches; a thread-pool round trip cost more than the call (twice per write).
              await withParent(loc.uri, rel, async (at, _d, name) => {
                const st = (disk = lstatSync(at, { bigint: true }));
                return entryFromStats(name, st, st.isSymbolicLink() ? readlinkSync(at) : undefined);
              });
        if (pe)
          fields = {
            type: pe.type,
            size: pe.size,
            mtimeSec: pe.mtimeSec,
            mtimeNsec: pe.mtimeNsec,
            mode: pe.mode,
            version: pe.version,
            hash: null,
            target: pe.target ?? null,
            rdev: pe.rdev ?? null,
          };
      } catch (err) {
        const code = toFsError(err, rel).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw toFsError(err, `lstat ${rel}`);
      }
    return { fields, disk };
  }

  /** The index side of refresh, inside the caller's transaction (or alone when it writes nothing). */
  private apply(
    loc: Location,
    rel: string,
    probed: { fields?: EntryFields },
    existing: Entry | undefined,
    parent: Entry | undefined,
  ): { entry?: Entry; wasDir: boolean; changed: boolean } {
    const { entries } = this.home;
    const fields = probed.fields;
    const wasDir = existing?.type === 'dir';
    if (!fields) {
      if (existing && existing.parentId !== null) entries.remove(existing, rel);
      if (existing) this.core.disk.delete(existing.id);
      return { wasDir, changed: !!existing };
    }
    if (existing) {
      if (existing.type !== fields.type) {
        entries.remove(existing, rel);
      } else {
        if (same(existing, fields)) return { entry: existing, wasDir, changed: false };
        const keep = existing.version === fields.version && existing.type === 'file' ? existing.hash : null;
        const f = { ...fields, hash: keep };
        entries.update(existing, f, rel);
        return { entry: { ...existing, ...f }, wasDir, changed: true };
      }
    }
    if (!parent || parent.type !== 'dir') return { wasDir, changed: !!existing }; // parent not indexed yet: the next scan adds both
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    const id = entries.insert(loc.id, parent.id, name, fields, rel);
    return { entry: entries.get(id), wasDir, changed: true };
  }

  /** Refreshes the other known names of the disk file `st` (entries whose last lstat had its inode). */
  private async refreshSiblings(loc: Location, except: number, st: { dev: bigint; ino: bigint }): Promise<void> {
    for (const id of this.core.disk.sameFile(st.dev, st.ino)) {
      if (id === except) continue;
      const e = this.home.entries.get(id);
      if (!e || e.locationId !== loc.id) {
        this.core.disk.delete(id);
        continue;
      }
      await this.refresh(loc, this.home.entries.pathOf(id), false).catch((err) =>
        noteSwallowed(this.core.log, 'local writer: refreshing another name of a file', err, { location: loc.name }, 'debug'),
      );
    }
  }

  /**
   * The directory holding `rel` after a name in it came or went: its mtime, ctime and link
   * count changed on the disk (lstat, kept in the disk stats; the index keeps no directory times).
   */
  async refreshParent(loc: Location, rel: string): Promise<void> {
    const parentRel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    await this.refresh(loc, parentRel, false).catch((err) =>
      noteSwallowed(this.core.log, 'local writer: refreshing a parent directory', err, { location: loc.name, path: parentRel }, 'debug'),
    );
  }

  /** A real file was seen to differ from the index: bring the entry up to date soon. */
  noteExternalChange(loc: Location, rel: string): void {
    void this.refresh(loc, rel).catch((err) => noteSwallowed(this.core.log, 'local writer: refreshing a changed file', err, { location: loc.name, path: rel }));
  }

  /**
   * Hashes a written file in the hash pool, off the event loop. Not while the file is still
   * open for writing (its bytes are not final: closed() asks again), and a request made while
   * one runs runs again after it. Results are committed in groups (see commitHashes).
   */
  private rehash(loc: Location, rel: string): void {
    if (this.core.live.get(virtualPath(loc.name, rel))) return;
    const key = `${loc.id}:${rel}`;
    if (this.rehashing.has(key)) {
      this.rehashAgain.add(key);
      return;
    }
    this.rehashing.add(key);
    // The worker opens the name (O_NOFOLLOW) inside the parent we hold open: the same fd
    // table, so /proc/self/fd/N/name is valid there, and nothing on the way can be swapped.
    void withParent(loc.uri, rel, (at) => this.core.hashPool.hashFile(at, this.home.config.blockSize))
      .then((r) => {
        if (!r.changed) this.hashed.push({ loc, rel, r });
        if (!this.hashedTimer) {
          this.hashedTimer = setTimeout(() => this.commitHashes(), HASH_COMMIT_MS);
          this.hashedTimer.unref();
        }
      })
      // Vanished or replaced meanwhile (its own close re-hashes it) is routine; anything else leaves
      // the file without a hash until the next scan, so it is logged and counted.
      .catch((err: FsError) => noteSwallowed(this.core.log, 'local writer: re-hash after close', err, { location: loc.name, path: rel }, err?.code === 'ENOENT' ? 'debug' : 'warn'))
      .finally(() => {
        this.rehashing.delete(key);
        if (this.rehashAgain.delete(key)) this.rehash(loc, rel);
      });
  }

  /**
   * Commits the hashes computed in the last few milliseconds in one transaction (a commit per
   * file was a large part of a `tar x` into the mount). A hash is derived data: a crash before
   * its commit only means the next scan computes it again.
   */
  commitHashes(): void {
    if (this.hashedTimer) clearTimeout(this.hashedTimer);
    this.hashedTimer = undefined;
    const done = this.hashed.splice(0);
    if (done.length === 0 || !this.home.db.open) return;
    try {
      this.commitHashed(done);
    } catch (err) {
      // The index is busy or closing: these files are re-hashed by the next scan.
      noteSwallowed(this.core.log, 'local writer: committing hashes', err, { files: done.length });
    }
  }

  private commitHashed(done: { loc: Location; rel: string; r: FileHash }[]): void {
    relaxedTransaction(this.home.db, () => {
      for (const { loc, rel, r } of done) {
        const e = this.home.entries.resolve(loc.id, rel);
        if (!e || e.version !== `${r.ino}:${r.size}:${r.mtimeNs}`) continue; // changed again; its own commit re-hashes
        this.home.blobs.put({ hash: r.hash, size: r.size, blockSize: this.home.config.blockSize, blockHashes: r.blockHashes });
        this.home.entries.update(e, { ...e, hash: r.hash }, rel);
      }
    });
    for (const { loc, rel } of done) this.core.resolver.invalidatePath(virtualPath(loc.name, rel), false);
  }

  async openForWrite(path: string, flags: OpenFlags): Promise<LocalHandle> {
    const t = this.target(path, 'open');
    if (t.existing?.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    // The kernel opens a FIFO or device of the mount itself; an open from WebDAV would block or write a device.
    if (t.existing && t.existing.type !== 'file' && t.existing.type !== 'symlink') throw new FsError('EPERM', `${path} is a ${t.existing.type}: it has no content to write`);
    if (!t.existing && !flags.create) throw new FsError('ENOENT', `${path}: no such file`);
    if (t.existing && flags.create && flags.exclusive) throw new FsError('EEXIST', `${path} already exists`);
    let mode = (flags.write || flags.truncate || flags.append ? C.O_RDWR : C.O_RDONLY) | C.O_NOFOLLOW;
    if (flags.create) mode |= C.O_CREAT | (flags.exclusive ? C.O_EXCL : 0);
    if (flags.truncate) mode |= C.O_TRUNC;
    if (flags.append) mode |= C.O_APPEND;
    const open = (m: number) =>
      openBeneath(t.location.uri, t.rel, m, flags.mode ?? 0o644).catch((err) => {
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
      fd = await open(mode);
      made = !t.existing && !!flags.exclusive;
    }
    let opened = false;
    try {
      if (made) await this.adopt(t, flags.mode, flags.owner, fd);
      const refreshed = !(t.existing && !flags.create && !flags.truncate);
      // Open for writing before the refresh: it then does not hash the file (its bytes are not final).
      const pre = fstatSync(fd.fd);
      this.core.live.opened(path, pre.size, pre.mtimeMs);
      opened = true;
      const entry = refreshed ? await this.refresh(t.location, t.rel, true, !t.existing) : t.existing;
      if (!entry) throw new FsError('ENOENT', `${path}: vanished while being opened`);
      return { kind: 'local', fd, vpath: path, location: t.location, rel: t.rel, entryId: entry.id, writable: true, append: !!flags.append, dirty: false };
    } catch (err) {
      if (opened) this.core.live.closed(path);
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
    h.dirty = false;
    if (!releasing) {
      const st = fstatSync(h.fd.fd);
      this.core.live.set(h.vpath, st.size, st.mtimeMs);
    }
    await this.refresh(h.location, h.rel);
  }

  closed(h: LocalHandle): void {
    if (!h.writable) return;
    this.core.live.closed(h.vpath);
    // The last writer closed: the bytes are final, hash them now (refresh skipped it while open).
    if (this.core.live.get(h.vpath)) return;
    const e = this.indexed(h.location, h.rel);
    if (e?.type === 'file' && !e.hash && !this.core.staged.queue.pending(h.location.id, h.rel)) this.rehash(h.location, h.rel);
  }

  async truncate(path: string, size: number): Promise<void> {
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
    await this.refresh(t.location, t.rel);
  }

  async mkdir(path: string, mode: number, owner?: Caller): Promise<void> {
    const t = this.target(path, 'mkdir');
    if (t.existing) throw new FsError('EEXIST', `${path} already exists`);
    await withParent(t.location.uri, t.rel, (at) => fsp.mkdir(at, { mode })).catch((err) => {
      throw toFsError(err, `mkdir ${path}`);
    });
    await this.adopt(t, mode, owner);
    await this.refresh(t.location, t.rel, true, true);
  }

  async remove(path: string, expect: 'file' | 'dir'): Promise<void> {
    const t = this.target(path, expect === 'dir' ? 'rmdir' : 'unlink');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    if (expect === 'dir' && t.existing.type !== 'dir') throw new FsError('ENOTDIR', `${path} is not a directory`);
    if (expect === 'file' && t.existing.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    const queue = this.core.staged.queue;
    // Held to the end: no upload of the path starts before its rows are dropped.
    const release = await queue.hold(t.location.id, t.rel);
    try {
      // Staged files not written to the disk yet still make their directory non-empty.
      if (expect === 'dir' && queue.hasUnder(t.location.id, t.rel)) throw new FsError('ENOTEMPTY', `${path} is not empty`);
      const linked = this.core.disk.get(t.existing.id);
      await withParent(t.location.uri, t.rel, (at) => (expect === 'dir' ? fsp.rmdir(at) : fsp.unlink(at))).catch((err) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toFsError(err, `remove ${path}`);
      });
      await queue.cancel(t.location.id, t.rel);
      this.core.staged.detach(path);
      await this.refresh(t.location, t.rel, true, true);
      // The file's other names lost a link (and their ctime changed).
      if (linked && linked.nlink > 1) await this.refreshSiblings(t.location, t.existing.id, linked);
    } finally {
      release();
    }
  }

  async rename(from: string, to: string, noReplace: boolean): Promise<void> {
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
    const queue = this.core.staged.queue;
    // Both names held until rows and entries moved: an upload starting after we saw the file
    // as only staged would land at the old name, behind the moved entry's back.
    const releaseA = await queue.hold(a.location.id, a.rel);
    const releaseB = await queue.hold(b.location.id, b.rel);
    try {
      const pendingOnly = !!queue.pending(a.location.id, a.rel) && (await lstatVersion(a.rel)) === null;
      if (b.existing?.type === 'dir' && queue.hasUnder(b.location.id, b.rel)) throw new FsError('ENOTEMPTY', `${to} is not empty`);
      if (!pendingOnly) {
        // Both names inside their safely opened parents: no directory on either side is followed.
        await withParent(root, a.rel, (atA) => withParent(root, b.rel, (atB) => fsp.rename(atA, atB))).catch((err) => {
          throw toFsError(err, `rename ${from}`);
        });
      }
      // Whatever was staged for the replaced target is gone with it; staged bytes of the moved
      // file follow it, based on what the disk holds at the new name when they only exist staged.
      await queue.cancel(b.location.id, b.rel);
      this.core.staged.detach(to);
      const baseAtB = pendingOnly ? await lstatVersion(b.rel) : undefined;
      queue.move(a.location.id, a.rel, b.rel, (rel) => (rel === b.rel ? baseAtB : undefined));
      const { entries, db } = this.home;
      db.transaction(() => {
        const moving = entries.get(a.existing!.id);
        if (moving) entries.move(moving, b.parent.id, b.name, a.rel, b.rel);
      }).immediate();
      this.core.resolver.invalidate();
      this.retargetHandles(from, to);
      await this.refresh(b.location, b.rel, true, true);
      await this.refreshParent(a.location, a.rel);
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
  async exchange(from: string, to: string): Promise<void> {
    const a = this.target(from, 'rename');
    const b = this.target(to, 'rename');
    if (!a.existing || !b.existing) throw new FsError('ENOENT', `${a.existing ? to : from}: no such entry`);
    if (a.location.id !== b.location.id) throw new FsError('EXDEV', `rename across locations (${a.location.name} -> ${b.location.name}): copy instead`);
    if (a.rel === b.rel) return;
    const inside = (x: string, y: string) => (y + '/').startsWith(x + '/');
    if (inside(a.rel, b.rel) || inside(b.rel, a.rel)) throw new FsError('EINVAL', `cannot exchange ${from} with a name inside it`);
    const root = a.location.uri;
    await withParent(root, a.rel, (atA) => withParent(root, b.rel, async (atB) => renameExchangeAt(atA, atB, `rename ${from}`)));
    const { entries, db } = this.home;
    const [ea, eb] = [a.existing, b.existing];
    const tmp = `.vdfs-exchange-${ea.id}`;
    const tmpRel = a.parentRel === '' ? tmp : `${a.parentRel}/${tmp}`;
    db.transaction(() => {
      entries.move(ea, a.parent.id, tmp, a.rel, tmpRel);
      entries.move(eb, a.parent.id, a.name, b.rel, a.rel);
      entries.move(ea, b.parent.id, b.name, tmpRel, b.rel);
    }).immediate();
    this.core.resolver.invalidate();
    const parked = `${from}\0exchange`; // never a real path: handles of `from` wait here while those of `to` move
    this.retargetHandles(from, parked);
    this.retargetHandles(to, from);
    this.retargetHandles(parked, to);
    await this.refresh(a.location, a.rel, false);
    await this.refresh(b.location, b.rel, false);
    await this.refreshParent(a.location, a.rel);
    if (a.parent.id !== b.parent.id) await this.refreshParent(b.location, b.rel);
  }

  /** Open handles and live sizes follow a renamed file or directory. */
  private retargetHandles(from: string, to: string): void {
    const moved = (p: string) => (p === from ? to : p.startsWith(from + '/') ? to + p.slice(from.length) : undefined);
    for (const [, h] of this.core.handles.all()) {
      if (h.kind === 'blob') continue;
      const np = moved(h.vpath);
      if (np) {
        h.vpath = np;
        h.rel = splitVirtual(np).rel;
      }
    }
    this.core.live.moved(from, to);
  }

  async symlink(targetText: string, path: string, owner?: Caller): Promise<void> {
    const t = this.target(path, 'symlink');
    if (t.existing) throw new FsError('EEXIST', `${path} already exists`);
    await withParent(t.location.uri, t.rel, (at) => fsp.symlink(targetText, at)).catch((err) => {
      throw toFsError(err, `symlink ${path}`);
    });
    await this.adopt(t, undefined, owner);
    await this.refresh(t.location, t.rel, true, true);
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
    await this.adopt(t, mode & 0o7777, owner);
    await this.refresh(t.location, t.rel);
    await this.refreshParent(t.location, t.rel);
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
    await withParent(root, a.rel, (atA) => withParent(root, b.rel, (atB) => fsp.link(atA, atB))).catch((err) => {
      throw toFsError(err, `link ${from}`);
    });
    await this.refresh(b.location, b.rel, true, true);
    await this.refresh(a.location, a.rel);
  }

  /**
   * A name just created through the mount gets what the disk would give the caller: their
   * uid, their gid (or the directory's when it is setgid), and exactly the permission bits
   * asked for (the caller's umask was applied by the kernel; the daemon's own must not be).
   * Ownership changes need root: a daemon run by a user creates files as that user.
   */
  private async adopt(t: Target, mode: number | undefined, owner: Caller | undefined, made?: FileHandle): Promise<void> {
    const root = t.location.uri;
    const me = process.getuid?.() ?? 0;
    // A file just created: its own open descriptor names the inode (no second open by name).
    const fh =
      made ??
      (await pathHandle(root, t.rel).catch((err) => {
        throw toFsError(err, `create ${t.rel}`);
      }));
    try {
      let st = made ? fstatSync(made.fd) : await fh.stat();
      if (owner && me === 0 && (st.uid !== owner.uid || st.gid !== owner.gid)) {
        const parentRel = t.rel.includes('/') ? t.rel.slice(0, t.rel.lastIndexOf('/')) : '';
        const parent = await (parentRel === '' ? fsp.stat(root) : pathHandle(root, parentRel).then((p) => p.stat().finally(() => p.close())));
        const gid = parent.mode & S_ISGID ? st.gid : owner.gid;
        if (st.isSymbolicLink()) await withParent(root, t.rel, (at) => fsp.lchown(at, owner.uid, gid));
        else await fsp.chown(fdPath(fh), owner.uid, gid);
        st = await fh.stat();
      }
      if (mode === undefined || st.isSymbolicLink()) return;
      const want = (mode & 0o7777) | (st.isDirectory() ? st.mode & S_ISGID : 0);
      if ((st.mode & 0o7777) !== want) await fsp.chmod(fdPath(fh), want);
    } catch (err) {
      throw toFsError(err, `create ${t.rel}`);
    } finally {
      if (!made) await fh.close().catch(() => undefined);
    }
  }

  /**
   * Runs a by-path call that follows symlinks (chmod, utimes) on the inode at `t.rel` itself:
   * an O_PATH handle opened without following anything, then the call on /proc/self/fd/N,
   * which the kernel resolves to that inode. A symlink there is refused (EPERM): Linux has
   * no modes on links, and following it is what the attack wants.
   */
  private async onInode(t: Target, what: string, fn: (p: string) => Promise<void>): Promise<void> {
    const fh = await pathHandle(t.location.uri, t.rel).catch((err) => {
      throw toFsError(err, `${what} ${t.rel}`);
    });
    try {
      if ((await fh.stat()).isSymbolicLink()) throw new FsError('EPERM', `${what} ${t.rel}: it is a symlink`);
      await fn(fdPath(fh)).catch((err) => {
        throw toFsError(err, `${what} ${t.rel}`);
      });
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async chmod(path: string, mode: number): Promise<void> {
    const t = this.target(path, 'chmod');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    await this.onInode(t, 'chmod', (p) => fsp.chmod(p, mode & 0o7777));
    await this.refresh(t.location, t.rel);
  }

  /** utimensat without following a symlink at the name (its own times), exact to the nanosecond. */
  async setTimes(path: string, atime: TimeSet, mtime: TimeSet): Promise<void> {
    const t = this.target(path, 'utimens');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    if (t.rel === '') await setTimesAt(`${t.location.uri}/.`, atime, mtime, `utimens ${path}`);
    else await withParent(t.location.uri, t.rel, (at) => setTimesAt(at, atime, mtime, `utimens ${path}`));
    if (mtime !== 'omit') {
      if (mtime === 'now') this.core.live.touched(path, Date.now());
      else this.core.live.touched(path, mtime.sec * 1000 + mtime.nsec / 1e6, BigInt(mtime.sec) * 1_000_000_000n + BigInt(mtime.nsec));
    }
    await this.refresh(t.location, t.rel);
  }

  /** lchown (-1 keeps an id): the disk decides who may (root; the owner to one of their groups). */
  async chown(path: string, uid: number, gid: number): Promise<void> {
    const t = this.target(path, 'chown');
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    const run = (p: string) =>
      fsp.lchown(p, uid, gid).catch((err) => {
        throw toFsError(err, `chown ${path}`);
      });
    if (t.rel === '') await run(`${t.location.uri}/.`);
    else await withParent(t.location.uri, t.rel, run);
    await this.refresh(t.location, t.rel);
  }
}
