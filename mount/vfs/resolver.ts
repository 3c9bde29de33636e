import { LRUCache } from 'lru-cache';
import { FsError, expectedError } from '../../core/fs-error';
import { dataVersionReader } from '../../index/db';
import type { VfsHome } from './vfs-home';
import { splitPath } from '../../core/paths';
import { resolveChild, resolveVirtual, VDFS_DIR, type Resolved } from './namespace';
import type { PathChange } from './types';

type Cached = Resolved | FsError;

/** How often, at most, another connection's commits are looked for (PRAGMA data_version). */
const VERSION_CHECK_MS = 1;

/**
 * Estimated heap bytes of one cached path: V8 keeps the key and the strings of the entry
 * (two bytes a character at worst) plus about 400 bytes of objects. An estimate on the high
 * side, so `resolver.cacheSize` is a ceiling.
 */
export function cachedBytes(vpath: string, r: Cached): number {
  const strings =
    vpath.length +
    (r instanceof FsError
      ? r.message.length
      : r.kind === 'entry'
        ? r.rel.length + r.entry.name.length + (r.entry.version?.length ?? 0) + (r.entry.hash?.length ?? 0) + (r.entry.target?.length ?? 0)
        : 0);
  return 400 + 2 * strings;
}

/**
 * Virtual path -> index entry, with an in-memory LRU in front of SQLite. The whole cache is
 * dropped when another connection (a CLI scan) commits (`PRAGMA data_version` moves) and
 * when our own writers call invalidate(); a writer that changed one entry drops just that
 * path (invalidatePath), since clearing 200k entries per written file made `tar x` crawl.
 * Misses (ENOENT) are cached too, because clients such as Finder ask for the same absent
 * names over and over. Keys are canonical ('/loc/a/b'), so one path has one cache entry.
 */
export class Resolver {
  private readonly cache: LRUCache<string, Cached>;
  private changeCount = 0;
  private readonly dataVersion: () => number;
  private lastVersion = -1;
  private nextVersionCheck = 0;
  private readonly listeners: ((change?: PathChange) => void)[] = [];
  private readonly pathListeners: ((vpath: string, subtree: boolean) => void)[] = [];
  private clears = 0;

  /** `maxBytes`: the cache's budget (config `resolver.cacheSize`), by the cachedBytes estimate. */
  constructor(
    private readonly home: VfsHome,
    readonly maxBytes = home.config['resolver.cacheSize'] ?? 16 * 1024 ** 2,
  ) {
    this.cache = new LRUCache<string, Cached>({ maxSize: Math.max(4096, maxBytes), sizeCalculation: (v, k) => cachedBytes(k, v) });
    this.dataVersion = dataVersionReader(home.db);
  }

  /** Estimated bytes held now, and entries. */
  get usage(): { bytes: number; entries: number } {
    return { bytes: this.cache.calculatedSize, entries: this.cache.size };
  }

  /** Throws ENOENT/EINVAL like resolveVirtual. */
  resolve(vpath: string): Resolved {
    this.checkVersion();
    const key = canonical(vpath);
    let r = key === undefined ? undefined : this.cache.get(key);
    if (r === undefined) {
      try {
        r = key === undefined ? resolveVirtual(this.home, vpath) : this.fromParent(key);
      } catch (err) {
        if (!(err instanceof FsError) || err.code !== 'ENOENT') throw err;
        r = err;
      }
      if (key !== undefined) this.cache.set(key, r);
    }
    if (r instanceof FsError) throw r;
    return r;
  }

  /**
   * A miss below a location root: the parent through the cache (itself resolved the same way
   * when missing), then one child query. A walk from the root per miss cost a query per
   * component for every name a `tar x` created. Throws like resolveVirtual.
   */
  private fromParent(key: string): Resolved {
    const cut = key.lastIndexOf('/');
    // '/', '/loc' and anything under /.vdfs: resolveVirtual directly.
    if (cut <= 0 || key.startsWith(`/${VDFS_DIR}/`)) return resolveVirtual(this.home, key);
    let parent: Resolved;
    try {
      parent = this.resolve(key.slice(0, cut));
    } catch (err) {
      if (err instanceof FsError && err.code === 'ENOENT') throw expectedError('ENOENT', `${key}: not in the index`);
      throw err;
    }
    return resolveChild(this.home, parent, key.slice(cut + 1), key);
  }

  /** Seeds the cache (readdir knows every child: the kernel will look each one up next). */
  prime(vpath: string, r: Resolved): void {
    const key = canonical(vpath);
    if (key !== undefined) this.cache.set(key, r);
  }

  /** Drops one cached answer without telling the listeners (the index did not change: the cache was behind it). */
  forget(vpath: string): void {
    const key = canonical(vpath);
    if (key !== undefined) this.cache.delete(key);
  }

  /**
   * Counts every change the resolver was told of or saw (quiet ones too, and other
   * connections' commits): what was built from the index is current while this has not moved.
   */
  get changes(): number {
    this.checkVersion();
    return this.changeCount;
  }

  /**
   * Moves whenever the whole cache is dropped (invalidate(), another connection's commit):
   * what was built from the index is current while neither this moved nor a path under it was
   * reported to onPathChange's listeners.
   */
  get epoch(): number {
    this.checkVersion();
    return this.clears;
  }

  /** Another connection's commit (a CLI scan) drops the cache and counts as a change. */
  private checkVersion(): void {
    // At most once a millisecond: the pragma (~4 µs) was a tenth of the daemon's time in a
    // `tar x` and in a cold `git status` (a LOOKUP per file, each its own turn of the event
    // loop). Another process's commit is seen within a millisecond, before any request a
    // process started after that commit can send.
    const now = performance.now();
    if (now < this.nextVersionCheck) return;
    this.nextVersionCheck = now + VERSION_CHECK_MS;
    const v = this.dataVersion();
    if (v !== this.lastVersion) {
      this.changeCount++;
      this.clears++;
      this.cache.clear();
      if (this.lastVersion !== -1) this.notify();
      this.lastVersion = v;
    }
  }

  /** Forgets everything (a change whose extent is not known: a rescan, a rename, a location). */
  invalidate(): void {
    this.changeCount++;
    this.clears++;
    this.cache.clear();
    this.notify();
  }

  /**
   * Forgets one path (an entry inserted, updated or removed, or a miss that became a hit),
   * and with `subtree` every path below it (a directory removed or replaced). `notify` false:
   * the change is one no kernel cache needs to hear of (a hash, or a change the kernel made
   * itself through the mount), so the listeners (the FUSE invalidator's sweep) are not called.
   */
  invalidatePath(vpath: string, subtree: boolean, notify = true): void {
    const key = canonical(vpath);
    if (key === undefined) return this.invalidate();
    this.changeCount++;
    this.cache.delete(key);
    if (subtree) {
      const prefix = `${key}/`;
      for (const k of [...this.cache.keys()]) if (k.startsWith(prefix)) this.cache.delete(k);
    }
    for (const fn of this.pathListeners) fn(key, subtree);
    if (notify) this.notify({ path: key, subtree });
  }

  /** Calls `fn(vpath, subtree)` (synchronously; never throwing) for every path invalidatePath forgets, quiet ones too. */
  onPathChange(fn: (vpath: string, subtree: boolean) => void): void {
    this.pathListeners.push(fn);
  }

  /**
   * Calls `fn` (synchronously; keep it cheap) whenever the index may have changed: with the
   * path that changed (and, `subtree`, every path below it) when one path did, without when
   * the change's extent is not known (a rescan, another connection's commit, a location).
   */
  onChange(fn: (change?: PathChange) => void): void {
    this.listeners.push(fn);
  }

  private notify(change?: PathChange): void {
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch {
        /* a listener's failure is not the resolver's */
      }
    }
  }
}

/**
 * Already canonical: '/'-separated names without '.', '..' or NUL, each at most 85 UTF-16 units
 * (so at most 255 bytes). The paths the front ends build are; the full check was a measurable
 * share of every getattr.
 */
const CANONICAL = /^(?:\/(?!\.\.?(?:\/|$))[^/\0]{1,85})+$/;

/** '/a/b' for '/a//b/', or undefined for a path resolveVirtual will refuse anyway. */
function canonical(vpath: string): string | undefined {
  if (CANONICAL.test(vpath)) return vpath;
  try {
    return `/${splitPath(vpath).join('/')}`;
  } catch {
    return undefined;
  }
}
