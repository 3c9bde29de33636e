import { LRUCache } from 'lru-cache';
import type { Statement } from 'better-sqlite3';
import { FsError } from '../../providers/fs-error';
import type { Home } from '../home';
import { splitPath } from '../../providers/paths';
import { resolveVirtual, type Resolved } from './namespace';

type Cached = Resolved | FsError;

/**
 * Virtual path -> index entry, with an in-memory LRU in front of SQLite. The whole cache is
 * dropped when another connection (a CLI scan) commits (`PRAGMA data_version` moves) and
 * when our own writers call invalidate(); a writer that changed one entry drops just that
 * path (invalidatePath), since clearing 200k entries per written file made `tar x` crawl.
 * Misses (ENOENT) are cached too, because clients such as Finder ask for the same absent
 * names over and over. Keys are canonical ('/loc/a/b'), so one path has one cache entry.
 */
export class Resolver {
  private readonly cache = new LRUCache<string, Cached>({ max: 200_000 });
  private readonly dataVersion: Statement;
  private lastVersion = -1;
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly home: Home) {
    this.dataVersion = home.db.prepare('PRAGMA data_version').pluck();
  }

  /** Throws ENOENT/EINVAL like resolveVirtual. */
  resolve(vpath: string): Resolved {
    const v = this.dataVersion.get() as number;
    if (v !== this.lastVersion) {
      this.cache.clear();
      if (this.lastVersion !== -1) this.notify();
      this.lastVersion = v;
    }
    const key = canonical(vpath);
    let r = key === undefined ? undefined : this.cache.get(key);
    if (r === undefined) {
      try {
        r = resolveVirtual(this.home, vpath);
      } catch (err) {
        if (!(err instanceof FsError) || err.code !== 'ENOENT') throw err;
        r = err;
      }
      if (key !== undefined) this.cache.set(key, r);
    }
    if (r instanceof FsError) throw r;
    return r;
  }

  /** Seeds the cache (readdir knows every child: the kernel will look each one up next). */
  prime(vpath: string, r: Resolved): void {
    const key = canonical(vpath);
    if (key !== undefined) this.cache.set(key, r);
  }

  /** Forgets everything (a change whose extent is not known: a rescan, a rename, a location). */
  invalidate(): void {
    this.cache.clear();
    this.notify();
  }

  /**
   * Forgets one path (an entry inserted, updated or removed, or a miss that became a hit),
   * and with `subtree` every path below it (a directory removed or replaced).
   */
  invalidatePath(vpath: string, subtree: boolean): void {
    const key = canonical(vpath);
    if (key === undefined) return this.invalidate();
    this.cache.delete(key);
    if (subtree) {
      const prefix = `${key}/`;
      for (const k of [...this.cache.keys()]) if (k.startsWith(prefix)) this.cache.delete(k);
    }
    this.notify();
  }

  /** Calls `fn` (synchronously; keep it cheap) whenever the index may have changed. */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  private notify(): void {
    for (const fn of this.listeners) {
      try { fn(); } catch { /* a listener's failure is not the resolver's */ }
    }
  }
}

/** '/a/b' for '/a//b/', or undefined for a path resolveVirtual will refuse anyway. */
function canonical(vpath: string): string | undefined {
  try {
    return `/${splitPath(vpath).join('/')}`;
  } catch {
    return undefined;
  }
}
