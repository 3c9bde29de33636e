import { promises as fsp } from 'node:fs';
import { FsError } from '../../core/fs-error';
import { fullGc } from '../../core/idle-gc';
import type { Entry } from '../../index/entries';
import type { Location } from '../../index/locations';
import { localVersion } from '../../core/local-stat';
import { fdPath, openDirBeneath, withParent } from '../../core/beneath';
import { normalizeRel, parentOf, splitPath } from '../../core/paths';
import { isHiddenRel } from '../../index/state-paths';
import { dirAttr, entryAttr, INO_BY_HASH, INO_ROOT, INO_VDFS } from './attrs';
import { HASH_RE, VDFS_DIR } from './namespace';
import type { DiskStat, StatFields } from './disk-stats';
import { loadNativeFuse, STAT_ASYNC_FIELDS } from '../../core/native-addon';
import type { Attr, Caller, DirEntry } from './types';
import { isStagedVersion } from './staged-writer';
import type { WriterHost } from './writer-host';
import type { LiveAttr } from './live-sizes';

/** What attribute building reads: the index, the resolver, live sizes of open files and disk stats. */
export type AttrHost = Pick<WriterHost, 'home' | 'resolver' | 'live' | 'disk' | 'featuresOf'> & {
  /** The owner of a write-back folder's staged file; undefined: the daemon's. Never throws. */
  stagedOwner(loc: Location, rel: string, entry: Entry): Caller | undefined;
};

/** From this many children not stat'ed yet, a listing reads the whole folder's stats in one native call (statDirAsync). */
const BATCH_MIN = 64;

/**
 * Every name of the open directory `fd` with its lstat, by one task on the libuv pool (the
 * addon's statDirAsync): lstat'ing 1,000 cold inodes one by one cost a pool round trip and a
 * BigIntStats each, most of a first `find` over a big tree. Undefined without the addon or
 * when the folder cannot be read (the caller falls back to lstat per name); names whose
 * fstatat failed are left out.
 */
async function batchStats(fd: number): Promise<Map<string, StatFields & { version: string }> | undefined> {
  const fn = loadNativeFuse().addon?.statDirAsync;
  const r = fn ? await fn(fd).catch(() => undefined) : undefined;
  if (r === undefined || typeof r === 'number') return undefined;
  const out = new Map<string, StatFields & { version: string }>();
  const s = r.stats;
  for (let i = 0, o = 0; i < r.names.length; i++, o += STAT_ASYNC_FIELDS) {
    if (s[o] !== 0n) continue;
    const ino = BigInt.asUintN(64, s[o + 6]);
    const size = s[o + 5];
    const mtimeNs = s[o + 9];
    out.set(r.names[i], {
      uid: s[o + 2],
      gid: s[o + 3],
      nlink: s[o + 4],
      size,
      ino,
      dev: BigInt.asUintN(64, s[o + 7]),
      atimeNs: s[o + 8],
      ctimeNs: s[o + 10],
      version: `${ino}:${size}:${mtimeNs}`,
    });
  }
  return out;
}

/** A listing kept for the next READDIR or PROPFIND of its directory. */
interface Kept {
  /** The directory's canonical virtual path. */
  path: string;
  /** Resolver.epoch when it was built. */
  epoch: number;
  list: DirEntry[];
  /** Index entry ids of the children. */
  ids: number[];
}

/** Bounds of the listings kept between READDIRs (see EntryAttrs.readdir): entries in all, and idle time. */
const LISTINGS_MAX_ENTRIES = 50_000;
const LISTINGS_IDLE_MS = 30_000;

/**
 * getattr and readdir of the VFS core: the index's entries, shown with the live size and mtime
 * of files open for writing and, on local disks, the disk's owners, link counts and times.
 */
export class EntryAttrs {
  /** Built listings by directory path (and whether files were stat'ed), with the resolver epoch they were built in. */
  private readonly listings = new Map<string, Kept>();
  /** Entry id of each child of a kept listing -> that listing's directory path (its disk stats changing makes the listing stale). */
  private readonly owners = new Map<number, string>();
  private listed = 0;
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly core: AttrHost) {
    // A change drops the listings it touches, not all of them: `git status` writes .git/index
    // while it lists every folder of the work tree, which then were all built again from SQLite.
    core.resolver.onPathChange((vpath, subtree) => {
      this.dropListing(parentOf(vpath));
      if (subtree) for (const k of [...this.listings.values()]) if (k.path === vpath || k.path.startsWith(`${vpath}/`)) this.dropListing(k.path);
    });
    core.disk.onEntryChange = (id) => {
      const dir = this.owners.get(id);
      if (dir !== undefined) this.dropListing(dir);
    };
  }

  private dropListing(dir: string): void {
    for (const key of [`1${dir}`, `0${dir}`]) {
      const kept = this.listings.get(key);
      if (!kept) continue;
      this.listings.delete(key);
      this.listed -= kept.list.length;
      for (const id of kept.ids) if (this.owners.get(id) === dir) this.owners.delete(id);
    }
  }

  private dropListings(): void {
    const dropped = this.listed;
    this.listings.clear();
    this.owners.clear();
    this.listed = 0;
    // Idle since: V8 would keep the pages of up to 50,000 dropped entries (~30 MB) resident.
    if (dropped > 1000) fullGc(true);
  }

  /**
   * The listing built last for this directory, if nothing it was built from has changed since:
   * the index under it (a path reported by the resolver, or the whole cache dropped), its
   * children's disk stats, and live files (none of its files may be open for writing). A cold
   * `ls -l` of 10,000 names (the kernel's caches dropped) spent ~40 ms of the daemon's ~120 ms
   * building it again from SQLite, and most of its garbage.
   */
  private keptListing(key: string, dir: string): DirEntry[] | undefined {
    const kept = this.listings.get(key);
    if (!kept || kept.epoch !== this.core.resolver.epoch || this.core.live.writingIn(dir)) return undefined;
    return kept.list;
  }

  private keepListing(key: string, kept: Kept): void {
    if (this.core.live.writingIn(kept.path)) return;
    this.dropListing(kept.path);
    // Full: the new listing is not kept, rather than one kept before it dropped. A walk of a
    // tree bigger than the bound (`find` over 100,000 names) comes back in the same order, and
    // dropping the oldest made every one of its listings be built again from SQLite; this way
    // the first LISTINGS_MAX_ENTRIES of them are handed out again. All go after LISTINGS_IDLE_MS.
    if (this.listed + kept.list.length > LISTINGS_MAX_ENTRIES) return;
    this.listings.set(key, kept);
    for (const id of kept.ids) this.owners.set(id, kept.path);
    this.listed += kept.list.length;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.dropListings(), LISTINGS_IDLE_MS).unref();
  }

  private get home() {
    return this.core.home;
  }

  /** Has real files on this machine (its entries show the disk's inode numbers and stats). */
  private isLocal(loc: Location): boolean {
    return this.core.featuresOf(loc).localFiles;
  }

  /**
   * The live values of a file open for writing: by its name when the name still holds that file
   * (not when it was unlinked or renamed over while open, and a FIFO or another file took the
   * name: they showed the open file's size and mode), or, for a hard link (`disk` has other
   * links), by the real file another name of it is open under. Without the latter, a listing
   * showed a link the index's size from before the write, and READDIRPLUS gave the kernel that
   * size for the one inode both names share.
   */
  private liveAttr(path: string, e: Entry, disk: DiskStat | undefined): LiveAttr | undefined {
    const live = this.core.live;
    if (live.size === 0 || e.type !== 'file') return undefined;
    const id = disk && live.identity(path);
    if (!id || (id.ino === disk.ino && id.dev === disk.dev)) {
      const l = live.get(path);
      if (l) return l;
    }
    return disk && disk.nlink > 1 ? live.linked(disk) : undefined;
  }

  /** Attributes of a path: the index's entry, with live sizes of open files and the disk's stat of local ones. Throws FsError (ENOENT, EINVAL). */
  async getattr(path: string): Promise<Attr> {
    const r = this.core.resolver.resolve(path);
    if (r.kind === 'root') return dirAttr(INO_ROOT);
    if (r.kind === 'virtual') return this.virtualAttr(r.parts, path);
    const local = this.isLocal(r.location);
    const disk = await this.diskStat(r.location, r.entry, r.rel);
    return this.owned(entryAttr(r.entry, r.location.readonly, this.liveAttr(path, r.entry, disk), disk, local), r.location, r.rel, r.entry, local);
  }

  /** A write-back folder's staged file shows the owner its bytes will land with (StagedOwners), not the daemon's. */
  private owned(a: Attr, loc: Location, rel: string, e: Entry, local: boolean): Attr {
    if (!local || !isStagedVersion(e.version)) return a;
    const owner = this.core.stagedOwner(loc, rel, e);
    if (owner) {
      a.uid = owner.uid;
      a.gid = owner.gid;
    }
    return a;
  }

  /** What the disk says of a local entry beyond the index (lstat once, then kept up to date by the writer). */
  private async diskStat(loc: Location, entry: Entry, rel: string): Promise<DiskStat | undefined> {
    if (!this.isLocal(loc)) return undefined;
    const known = this.core.disk.get(entry.id);
    if (known) return known;
    try {
      const st = rel === '' ? await fsp.stat(loc.uri, { bigint: true }) : await withParent(loc.uri, rel, (at) => fsp.lstat(at, { bigint: true }));
      if (localVersion(st) !== entry.version && entry.type === 'file') return undefined; // changed meanwhile: the index catches up first
      this.core.disk.set(entry.id, st);
      return this.core.disk.get(entry.id);
    } catch {
      return undefined; // unreachable or gone: the index's view
    }
  }

  /**
   * lstat, once, the children of a local directory the disk stats do not know yet (entries
   * indexed by a scan, never looked up): a listing (READDIRPLUS hands the kernel every child's
   * attributes) then shows the disk's owners, link counts, atime and ctime, not the daemon's.
   * Through the listed directory's fd, without following symlinks; failures leave the index's view.
   * Returns how many it stat'ed.
   */
  private async primeDiskStats(loc: Location, rel: string, children: Entry[]): Promise<number> {
    const unknown = children.filter((c) => !this.core.disk.has(c.id));
    if (unknown.length === 0) return 0;
    const dh = await openDirBeneath(loc.uri, splitPath(rel), rel).catch(() => undefined);
    if (!dh) return 0;
    let primed = 0;
    try {
      const batch = unknown.length >= BATCH_MIN ? await batchStats(dh.fd) : undefined;
      if (batch) {
        for (const c of unknown) {
          const st = batch.get(c.name);
          if (st && (c.type !== 'file' || st.version === c.version)) {
            this.core.disk.set(c.id, st);
            primed++;
          }
        }
        return primed;
      }
      for (let i = 0; i < unknown.length; i += 64) {
        await Promise.all(
          unknown.slice(i, i + 64).map(async (c) => {
            const st = await fsp.lstat(fdPath(dh, c.name), { bigint: true }).catch(() => undefined);
            // A file changed since it was indexed: the index catches up first (as in diskStat).
            if (st && (c.type !== 'file' || localVersion(st) === c.version)) {
              this.core.disk.set(c.id, st);
              primed++;
            }
          }),
        );
      }
    } finally {
      await dh.close().catch(() => undefined);
    }
    return primed;
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

  /** The names in a directory with their attributes (READDIRPLUS). Throws FsError (ENOENT, ENOTDIR, EINVAL). */
  async readdir(path: string, opts: { statFiles?: boolean } = {}): Promise<DirEntry[]> {
    const r = this.core.resolver.resolve(path);
    if (r.kind === 'root') {
      const out: DirEntry[] = [{ name: VDFS_DIR, attr: dirAttr(INO_VDFS) }];
      for (const loc of this.home.locations.list()) {
        const root = this.home.entries.root(loc.id);
        if (!root) continue; // never scanned: nothing to show yet
        this.core.resolver.prime(`/${loc.name}`, { kind: 'entry', location: loc, entry: root, rel: '' });
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
    // By the canonical path: the key the resolver reports changes by.
    const dir = `/${normalizeRel(path)}`;
    const key = `${opts.statFiles === false ? 0 : 1}${dir}`;
    const kept = this.keptListing(key, dir);
    if (kept) return kept;
    const [index, disk, epoch] = [this.core.resolver.changes, this.core.disk.version, this.core.resolver.epoch];
    const { list, ids, primed } = await this.listEntry(r.location, r.entry, r.rel, path, opts);
    // Kept only when nothing moved while it was built but the disk stats it took itself.
    if (index === this.core.resolver.changes && this.core.disk.version === disk + primed) this.keepListing(key, { path: dir, epoch, list, ids });
    return list;
  }

  private async listEntry(
    location: Location,
    entry: Entry,
    rel: string,
    path: string,
    opts: { statFiles?: boolean },
  ): Promise<{ list: DirEntry[]; ids: number[]; primed: number }> {
    const r = { location, entry, rel };
    const base = path.endsWith('/') ? path.slice(0, -1) : path;
    const hidden = this.home.hidden.of(r.location.uri); // [] for a cloud or peer location
    const children = this.home.entries.children(r.entry.id);
    const local = this.isLocal(r.location);
    const primed = local ? await this.primeDiskStats(r.location, r.rel, opts.statFiles === false ? children.filter((c) => c.type === 'dir') : children) : 0;
    // The children are not put in the resolver's cache: READDIRPLUS hands the kernel every
    // child's attributes, so few are resolved next, and priming 100,000 names per `find` cost
    // more (and evicted the paths in use) than the one query a later miss takes.
    const list = (hidden.length === 0 ? children : children.filter((c) => !isHiddenRel(r.rel === '' ? c.name : `${r.rel}/${c.name}`, hidden))).map((child) => {
      const disk = this.core.disk.get(child.id);
      return {
        name: child.name,
        attr: this.owned(
          entryAttr(child, r.location.readonly, this.liveAttr(`${base}/${child.name}`, child, disk), disk, local),
          r.location,
          r.rel === '' ? child.name : `${r.rel}/${child.name}`,
          child,
          local,
        ),
      };
    });
    return { list, ids: children.map((c) => c.id), primed };
  }
}
