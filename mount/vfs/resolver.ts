import { LRUCache } from 'lru-cache';
import type { Statement } from 'better-sqlite3';
import { FsError } from '../../providers/fs-error';
import type { Home } from '../home';
import { resolveVirtual, type Resolved } from './namespace';

type Cached = Resolved | FsError;

/**
 * Virtual path -> index entry, with an in-memory LRU in front of SQLite. The whole cache is
 * dropped when the index changes: `PRAGMA data_version` moves when another connection
 * (a CLI scan) commits, and our own writers call invalidate(). Misses (ENOENT) are cached
 * too, because clients such as Finder ask for the same absent names over and over.
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
    let r = this.cache.get(vpath);
    if (r === undefined) {
      try {
        r = resolveVirtual(this.home, vpath);
      } catch (err) {
        if (!(err instanceof FsError) || err.code !== 'ENOENT') throw err;
        r = err;
      }
      this.cache.set(vpath, r);
    }
    if (r instanceof FsError) throw r;
    return r;
  }

  /** Seeds the cache (readdir knows every child: the kernel will look each one up next). */
  prime(vpath: string, r: Resolved): void {
    this.cache.set(vpath, r);
  }

  invalidate(): void {
    this.cache.clear();
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
