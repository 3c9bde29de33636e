import { lstatSync, promises as fsp, readlinkSync, type BigIntStats } from 'node:fs';
import { FsError, toFsError } from '../../core/fs-error';
import { noteSwallowed } from '../../core/swallowed';
import type { Entry, EntryFields } from '../../index/entries';
import type { Location } from '../../index/locations';
import type { Resolved } from './namespace';
import { groupedWrite, onGroupFailed } from '../../index/commit-group';
import type { FileHash } from '../../index/hash-pool';
import { WrittenHashes, hashedVersion } from './written-hashes';
import { entryFromStats, localVersion } from '../../core/local-stat';
import { withParent } from '../../core/beneath';
import { virtualPath } from './namespace';
import type { FileIdentity } from './live-sizes';
import { stagedPaths, type WriterHost } from './writer-host';

/** True when `now` is the file `before` was with only its mtime changed (same inode and size). */
function retimedOnly(before: BigIntStats, now: EntryFields | undefined): boolean {
  if (now?.type !== 'file' || !before.isFile()) return false;
  const mtimeNs = BigInt(now.mtimeSec) * 1_000_000_000n + BigInt(now.mtimeNsec);
  return now.version === localVersion({ ino: before.ino, size: before.size, mtimeNs });
}

/** lstat by path; undefined for any failure (the caller then asks the safe way). */
export function lstatQuiet(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** lstat by path found no such name (ENOENT, ENOTDIR); false for any other failure. */
function absent(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) === undefined;
  } catch {
    return false;
  }
}

/** What probe finds where no such name is. */
const NOT_THERE: Probed = Object.freeze({});
type Probed = { fields?: EntryFields; disk?: BigIntStats };
/** What the caller of IndexRefresh.refresh already knows of the disk (see refresh). */
export interface KnownDisk {
  hash?: FileHash;
  retimedFrom?: BigIntStats;
  gone?: boolean;
  own?: BigIntStats;
  ownFolder?: BigIntStats;
}

/** True when the index entry already says what the disk says (applying it would write nothing). */
function same(e: Entry | undefined, f: EntryFields | undefined): boolean {
  if (!e || !f) return !e && !f;
  return (
    (f.hash === null || f.hash === e.hash) &&
    e.type === f.type &&
    e.size === f.size &&
    e.mtimeSec === f.mtimeSec &&
    e.mtimeNsec === f.mtimeNsec &&
    e.mode === f.mode &&
    e.version === f.version &&
    e.target === f.target
  );
}

/**
 * The index side of the local writer: brings index entries up to date from what the disk
 * reports (lstat inside the safely opened parent); written files' hashes are `hashes`'. The
 * mutations themselves are LocalWriter's.
 */
export class IndexRefresh {
  /** Written files' hashes, computed off the request path. */
  readonly hashes: WrittenHashes;
  /**
   * Refreshes of one path in flight: when each started, and the start of the latest that
   * applied. A refresh whose disk probe is older than one already applied must not apply: the
   * watcher's refresh that found a name gone, then committed after a CREATE put it back,
   * removed the row of a file on the disk (the kernel's next OPEN of it answered ENOENT).
   */
  private readonly runs = new Map<string, { running: number; applied: number }>();
  private started = 0;

  constructor(private readonly core: WriterHost) {
    this.hashes = new WrittenHashes(core);
    // Rows of a failed group commit are on the disk only: the next flush, close or rescan brings them back.
    onGroupFailed(core.home.db, (err) => noteSwallowed(core.log, 'local writer: committing a group of index rows', err));
  }

  private get home() {
    return this.core.home;
  }

  /**
   * Makes the index entry at `rel` match the real filesystem (insert, update or remove).
   * The hash is kept only while the version (inode, size, mtime) is unchanged. With
   * `parent`, the directory holding `rel` is brought up to date in the same commit (a name in
   * it came or went): one commit per created file instead of two. Throws FsError when the disk
   * cannot be read (anything but ENOENT/ENOTDIR, which mean "not there"), and the index's errors.
   * `quiet`: the change came through a kernel front end that knows of it (OpenFlags.kernel), so
   * no invalidation sweep is started for it (a directory replaced by a file still starts one).
   * `known.hash`: the file's content hash, just read (hashClosing); committed with the entry
   * when it is of the version the disk shows. `known.retimedFrom`: the file's lstat right before
   * the daemon itself set its times (utimens by name): a hash of that version stays, since only
   * the mtime moved (`rsync -a` sets the times of every file it has just written and closed).
   * `known.gone`: the daemon itself just removed `rel` inside its opened parent, so it is not
   * probed (two failed `lstat`s per file of an `rm -r`); a name made there since is the
   * watcher's to add. `known.own`: an fstat just taken of the daemon's own descriptor of `rel`
   * (opened beneath the location): taken as its lstat, one system call where a probe by path
   * takes one to five (a probe again when a later refresh applied first). `known.ownFolder`:
   * the same for the folder holding `rel` (with `parent`), from the descriptor the daemon just
   * created `rel` in.
   */
  async refresh(loc: Location, rel: string, siblings = true, parent = false, quiet = false, known?: KnownDisk): Promise<Entry | undefined> {
    const key = `${loc.id}\0${rel}`;
    const run = this.runs.get(key) ?? { running: 0, applied: 0 };
    this.runs.set(key, run);
    run.running++;
    let mine = ++this.started;
    try {
      return await this.refreshRun(loc, rel, siblings, parent, quiet, known, () => {
        if (run.applied > mine) {
          mine = ++this.started;
          return false;
        }
        run.applied = mine;
        return true;
      });
    } finally {
      if (--run.running === 0) this.runs.delete(key);
    }
  }

  /** refresh's work. `current()`: no later refresh of the path applied first (then it claims the path; else probe again). */
  private async refreshRun(
    loc: Location,
    rel: string,
    siblings: boolean,
    parent: boolean,
    quiet: boolean,
    known: KnownDisk | undefined,
    current: () => boolean,
  ): Promise<Entry | undefined> {
    const hash = known?.hash;
    // Staged bytes not uploaded yet are newer than the disk: the entry describes them.
    const staged = stagedPaths(this.core, loc);
    if (staged.pending(loc.id, rel)) {
      if (parent) await this.refreshParent(loc, rel);
      return this.home.entries.resolve(loc.id, rel);
    }
    const parentRel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    const upRel = parent && rel !== '' ? parentRel : undefined;
    let [self, up] = await this.probeBoth(loc, rel, upRel, known);
    // A refresh that started later has applied a newer state of the disk: this probe is older.
    while (!current()) [self, up] = await this.probeBoth(loc, rel, upRel);
    const hashed = hash && self.fields?.type === 'file' && self.fields.version === hashedVersion(hash) ? hash : undefined;
    if (hashed && self.fields) self.fields.hash = hashed.hash;
    const keepFrom = known?.retimedFrom && retimedOnly(known.retimedFrom, self.fields) ? localVersion(known.retimedFrom) : undefined;
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
      r = this.apply(loc, rel, self, existing, upEntry, keepFrom);
    };
    // Nothing differs from the index (a chown to the same owner, a flush without new bytes):
    // no commit (apply then only reads).
    if (same(existing, self.fields) && (!up || same(upEntry, up.fields))) apply();
    else
      groupedWrite(this.home.db, () => {
        ({ dir: upEntry, entry: existing } = lookup(upEntry?.id));
        // Again inside the transaction: a write may have been staged while the disk was probed.
        if (staged.pending(loc.id, rel)) {
          r = { entry: existing, wasDir: false, changed: false };
          return;
        }
        if (hashed) this.home.blobs.put({ hash: hashed.hash, size: hashed.size, blockSize: this.home.config.blockSize, blockHashes: hashed.blockHashes });
        apply();
      });
    const result = r.entry;
    const wasDir = r.wasDir;
    // Only this path changed, unless a directory went away or became something else. Nothing
    // committed (a flush without new bytes, the watcher seeing our own write): the cache and the
    // kernel's view are still right, and no invalidation sweep is started for it. A directory
    // that became something else does start one even when quiet; one the kernel removed itself
    // (its RMDIR, or a RENAME over it: empty either way) does not.
    const vpath = virtualPath(loc.name, rel);
    const subtree = wasDir && result?.type !== 'dir';
    if (r.changed) this.core.resolver.invalidatePath(vpath, subtree, !quiet || (subtree && result !== undefined));
    // The next lookup (CREATE's reply, the kernel's GETATTR) finds the row just read or written.
    // Also when this refresh wrote nothing: a rescan on the daemon's own connection may have
    // written the row first, which the resolver cannot see (data_version only counts other
    // connections), after a LOOKUP cached the name as missing (MKDIR then answered ENOENT).
    if (result) this.core.resolver.prime(vpath, { kind: 'entry', location: loc, entry: result, rel });
    else if (!r.changed) this.core.resolver.forget(vpath);
    if (upChanged) this.core.resolver.invalidatePath(virtualPath(loc.name, parentRel), false, !quiet);
    const entry = result as Entry | undefined;
    if (entry && self.disk) {
      this.core.disk.set(entry.id, self.disk);
      // Hard links: the other names of this file changed with it (mode, times, size, links).
      if (siblings && self.disk.nlink > 1n) await this.refreshSiblings(loc, entry.id, self.disk);
    }
    if (up?.disk && upEntry) this.core.disk.set(upEntry.id, up.disk);
    if (entry?.type === 'file' && !entry.hash) this.hashes.rehash(loc, rel);
    return entry;
  }

  /**
   * The index entry at `rel`, through the resolver's cache (a parent directory is nearly always
   * there); a walk from the location root only on a miss. Callers that write re-read it by id.
   */
  indexed(loc: Location, rel: string): Entry | undefined {
    try {
      const r = this.core.resolver.resolve(virtualPath(loc.name, rel));
      if (r.kind === 'entry' && r.location.id === loc.id) return r.entry;
    } catch {
      /* not resolvable by name (hidden, or gone): ask the index itself */
    }
    return this.home.entries.resolve(loc.id, rel);
  }

  /**
   * True when a refresh of `rel` can wait or would only confirm the index (the watcher seeing
   * the daemon's own writes): a file the daemon's writer has open (its flush and close refresh
   * it from the disk; a refresh now would commit a half-written state and notify the kernel of
   * it), or an indexed file whose disk stat is exactly the one its entry was last refreshed from
   * (same inode, ctime, size, mtime and mode) and which has its hash or is getting it, or a
   * path neither indexed nor on the disk. A plain lstat by path is enough: it can only match the
   * very inode recorded (or find nothing where nothing is beneath the location either), and
   * anything else gets the full refresh. Never throws.
   */
  unchanged(loc: Location, rel: string): boolean {
    const vpath = virtualPath(loc.name, rel);
    if (this.core.live.has(vpath)) return true;
    let r: Resolved;
    try {
      r = this.core.resolver.resolve(vpath);
    } catch (err) {
      // Neither indexed nor on the disk: a temporary name renamed or removed since its event
      // (`rsync -a`'s `.f.XXXXXX`, an editor's swap file). Its refresh would find nothing, after
      // a failed watch and a walk beneath the location.
      return err instanceof FsError && err.code === 'ENOENT' && absent(`${loc.uri}/${rel}`);
    }
    if (r.kind !== 'entry' || r.location.id !== loc.id || r.entry.type !== 'file') return false;
    const e = r.entry;
    const d = this.core.disk.get(e.id);
    const key = `${loc.id}:${rel}`;
    if (!d || (!e.hash && !this.hashes.busy(key))) return false;
    const st = lstatQuiet(`${loc.uri}/${rel}`);
    return (
      !!st &&
      st.isFile() &&
      st.ino === d.ino &&
      st.dev === d.dev &&
      st.ctimeNs === d.ctimeNs &&
      Number(st.size) === e.size &&
      st.mtimeNs === BigInt(e.mtimeSec) * 1_000_000_000n + BigInt(e.mtimeNsec) &&
      (Number(st.mode) & 0o7777) === e.mode
    );
  }

  /**
   * The real file or directory `rel` was last seen to be (device, inode): the one its open writer
   * holds, else its entry's disk stat; undefined when neither is known. Never throws.
   */
  private known(loc: Location, rel: string): FileIdentity | undefined {
    const vpath = virtualPath(loc.name, rel);
    const live = this.core.live.identity(vpath);
    if (live || rel === '') return live;
    let e: Entry | undefined;
    try {
      const r = this.core.resolver.resolve(vpath);
      e = r.kind === 'entry' && r.location.id === loc.id ? r.entry : undefined;
    } catch {
      return undefined;
    }
    const d = e && this.core.disk.get(e.id);
    return d && { dev: d.dev, ino: d.ino };
  }

  /** `rel` and, when given, the folder `parentRel` holding it; `known.gone`, `known.own` and `known.ownFolder` as refresh's (taken instead of a probe). */
  private probeBoth(loc: Location, rel: string, parentRel: string | undefined, known?: KnownDisk): Promise<[Probed, Probed | undefined]> {
    const folder = known?.ownFolder;
    return Promise.all([
      known?.gone ? NOT_THERE : this.probe(loc, rel, known?.own ? undefined : this.known(loc, rel), known?.own),
      parentRel === undefined ? undefined : this.probe(loc, parentRel, folder ? undefined : this.known(loc, parentRel), folder).catch(() => undefined),
    ]);
  }

  /**
   * What the disk says of `rel` (lstat inside its safely opened parent); no fields when it is not
   * there. `known`: the file `rel` is expected to be (see known()); when a plain lstat by path
   * finds that very file (not a symlink), its answer is taken: it can only describe a file the
   * index or an open writer already holds, so no path leads outside, and it is one system call
   * where the safe walk takes five (a created file is probed twice, its folder once). `own`: see
   * refresh's `known.own`.
   */
  private async probe(loc: Location, rel: string, known?: FileIdentity, own?: BigIntStats): Promise<Probed> {
    let fields: EntryFields | undefined;
    let disk: BigIntStats | undefined;
    // A vdfs state folder is "not there" for the index: an entry left from before is removed.
    if (!this.home.hidden.hides(loc.uri, rel))
      try {
        const plain = known && rel !== '' ? lstatQuiet(`${loc.uri}/${rel}`) : undefined;
        const taken = own ?? (plain && !plain.isSymbolicLink() && plain.ino === known?.ino && plain.dev === known.dev ? plain : undefined);
        const pe = taken
          ? entryFromStats(rel.slice(rel.lastIndexOf('/') + 1), (disk = taken))
          : rel === ''
            ? entryFromStats('', (disk = await fsp.stat(loc.uri, { bigint: true })))
            : // lstat of the name inside its parent, opened without following symlinks: a path
              // through a swapped-in symlink is "not there" for the index, never the file outside.
              // Synchronous: the lstat of a name inside its open parent is answered from the dentry
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
    keepFrom?: string,
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
        // `keepFrom`: the version before the daemon's own utimens (refresh's `retimedFrom`).
        const keep = existing.type === 'file' && (existing.version === fields.version || existing.version === keepFrom) ? existing.hash : null;
        const f = { ...fields, hash: fields.hash ?? keep };
        entries.update(existing, f, rel, true); // read again inside this transaction (refreshRun)
        return { entry: { ...existing, ...f }, wasDir, changed: true };
      }
    }
    if (!parent || parent.type !== 'dir') return { wasDir, changed: !!existing }; // parent not indexed yet: the next scan adds both
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    const id = entries.insert(loc.id, parent.id, name, fields, rel);
    return { entry: entries.get(id), wasDir, changed: true };
  }

  /** Refreshes the other known names of the disk file `st` (entries whose last lstat had its inode). */
  async refreshSiblings(loc: Location, except: number, st: { dev: bigint; ino: bigint }): Promise<void> {
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
   * `quiet` as for refresh. Never throws: a failure is logged and counted (the next scan catches up).
   */
  async refreshParent(loc: Location, rel: string, quiet = false): Promise<void> {
    const parentRel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    await this.refresh(loc, parentRel, false, false, quiet).catch((err) =>
      noteSwallowed(this.core.log, 'local writer: refreshing a parent directory', err, { location: loc.name, path: parentRel }, 'debug'),
    );
  }

  /**
   * The daemon changed a file's owner or mode through a descriptor, for a kernel front end that
   * knows of it: the entry follows the disk (quietly). Never throws.
   */
  noteOwnChange(loc: Location, rel: string): void {
    void this.refresh(loc, rel, true, false, true).catch((err) =>
      noteSwallowed(this.core.log, 'local writer: refreshing a file changed through a descriptor', err, { location: loc.name, path: rel }),
    );
  }

  /** A real file was seen to differ from the index: bring the entry up to date soon. */
  noteExternalChange(loc: Location, rel: string): void {
    void this.refresh(loc, rel).catch((err) => noteSwallowed(this.core.log, 'local writer: refreshing a changed file', err, { location: loc.name, path: rel }));
  }
}
