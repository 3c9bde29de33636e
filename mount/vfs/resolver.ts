import { LRUCache } from 'lru-cache';
import type { Statement } from 'better-sqlite3';
import { FsError } from '../../providers/fs-error';
import type { Home } from '../home';
import { resolveVirtual, type Resolved } from './namespace';

type Cached = Resolved | FsError;

/**
 * Estimated heap bytes of one cached path: V8 keeps the key and the strings of the entry
 * (two bytes a character at worst) plus about 400 bytes of objects. An estimate on the high
 * side, so `resolver.cacheSize` is a ceiling.
 */
export function cachedBytes(vpath: string, r: Cached): number {
  const strings = vpath.length + (r instanceof FsError ? r.message.length : r.kind === 'entry' ? r.rel.length + r.entry.name.length + (r.entry.version?.length ?? 0) + (r.entry.hash?.length ?? 0) + (r.entry.target?.length ?? 0) : 0);
  return 400 + 2 * strings;
}

/**
 * Virtual path -> index entry, with an in-memory LRU in front of SQLite. The whole cache is
 * dropped when the index changes: `PRAGMA data_version` moves when another connection
 * (a CLI scan) commits, and our own writers call invalidate(). Misses (ENOENT) are cached
 * too, because clients such as Finder ask for the same absent names over and over.
 */
export class Resolver {
  private readonly cache: LRUCache<string, Cached>;
  private readonly dataVersion: Statement;
  private lastVersion = -1;

  /** `maxBytes`: the cache's budget (config `resolver.cacheSize`), by the cachedBytes estimate. */
  constructor(private readonly home: Home, readonly maxBytes = home.config['resolver.cacheSize'] ?? 16 * 1024 ** 2) {
    this.cache = new LRUCache<string, Cached>({ maxSize: Math.max(4096, maxBytes), sizeCalculation: (v, k) => cachedBytes(k, v) });
    this.dataVersion = home.db.prepare('PRAGMA data_version').pluck();
  }

  /** Estimated bytes held now, and entries. */
  get usage(): { bytes: number; entries: number } {
    return { bytes: this.cache.calculatedSize, entries: this.cache.size };
  }

  /** Throws ENOENT/EINVAL like resolveVirtual. */
  resolve(vpath: string): Resolved {
    const v = this.dataVersion.get() as number;
    if (v !== this.lastVersion) {
      this.cache.clear();
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
  }
}
