import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { ensurePrivateFile } from '../core/private-files';
import { FsError } from '../core/fs-error';

/** One cached block as persisted: its key, file name, size, BLAKE3 hex and recency (the cache sees it as `cache/cache-index.ts IndexRow`). */
export interface CachedBlockRow {
  key: string;
  /** File name (64 hex chars) under the fan-out directory `file.slice(0, 2)`. */
  file: string;
  size: number;
  /** BLAKE3 hex of the bytes written; checked on every read-back. */
  sum: string;
  /** Recency: a sequence number, larger = used more recently. */
  used: number;
}

const SCHEMA_VERSION = 1;

/**
 * The persistent part of the block cache: which blocks are on disk, their checksums and
 * their LRU recency, in a small SQLite file (`index.db` in the cache dir, apart from the
 * home's index: the cache is disposable and may live elsewhere). It implements
 * `cache/cache-index.ts CacheIndex`; the wiring hands `openCacheStore` to the cache. The cache keeps
 * the live state in memory and writes it here in batches (see BlockCache), so the hot path
 * never waits on SQLite. WAL with synchronous=NORMAL: a power loss may lose the last
 * batch (recency, or the row of a block just written); `BlockCache.open` reconciles the
 * rows with the files on disk, and every read-back is verified, so that loses cache
 * contents at worst, never correctness.
 *
 * Methods are synchronous (better-sqlite3) and throw FsError EIO when SQLite fails.
 */
export class CacheStore {
  private constructor(
    private readonly db: Database.Database,
    private readonly upsertStmt: Database.Statement,
    private readonly deleteStmt: Database.Statement,
  ) {}

  /**
   * Opens or creates the index at `file`. A file that is unreadable, corrupt or of another
   * schema version is deleted and recreated empty (the cache is disposable; the caller's
   * reconciliation then removes the block files nobody knows). Throws FsError EIO only when
   * even a fresh file cannot be created.
   */
  static open(file: string): CacheStore {
    try {
      return CacheStore.tryOpen(file);
    } catch {
      for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
      try {
        return CacheStore.tryOpen(file);
      } catch (err) {
        throw new FsError('EIO', `cannot open cache index ${file}: ${(err as Error).message}`, err);
      }
    }
  }

  private static tryOpen(file: string): CacheStore {
    for (const f of [file, `${file}-wal`, `${file}-shm`]) ensurePrivateFile(f, f === file);
    const db = new Database(file, { timeout: 5_000 });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      const v = db.pragma('user_version', { simple: true }) as number;
      if (v !== SCHEMA_VERSION) {
        db.exec('DROP TABLE IF EXISTS blocks');
        db.exec(`CREATE TABLE blocks (
          key  TEXT PRIMARY KEY,
          file TEXT NOT NULL,
          size INTEGER NOT NULL,
          sum  TEXT NOT NULL,
          used INTEGER NOT NULL
        )`);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }
      // Reading it proves the file is sane before we trust it.
      db.prepare('SELECT count(*) FROM blocks').get();
      return new CacheStore(
        db,
        db.prepare(
          'INSERT INTO blocks (key, file, size, sum, used) VALUES (@key, @file, @size, @sum, @used) ' +
            'ON CONFLICT(key) DO UPDATE SET file = excluded.file, size = excluded.size, sum = excluded.sum, used = excluded.used',
        ),
        db.prepare('DELETE FROM blocks WHERE key = ?'),
      );
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Every row, least recently used first. Throws FsError EIO. */
  load(): CachedBlockRow[] {
    return this.guard('load', () => this.db.prepare('SELECT key, file, size, sum, used FROM blocks ORDER BY used').all() as CachedBlockRow[]);
  }

  /** Writes one batch (upserts and deletes) in a single transaction. Throws FsError EIO. */
  apply(upserts: CachedBlockRow[], deletes: string[]): void {
    if (upserts.length === 0 && deletes.length === 0) return;
    this.guard('write', () =>
      this.db.transaction(() => {
        for (const k of deletes) this.deleteStmt.run(k);
        for (const r of upserts) this.upsertStmt.run(r);
      })(),
    );
  }

  /** Removes every row. Throws FsError EIO. */
  clear(): void {
    this.guard('clear', () => this.db.exec('DELETE FROM blocks'));
  }

  /** Closes the database (checkpointing the WAL). Never throws. */
  close(): void {
    try {
      this.db.close();
    } catch {
      /* closing twice or after a failure: nothing left to do */
    }
  }

  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw new FsError('EIO', `cache index ${what}: ${(err as Error).message}`, err);
    }
  }
}

/** Opens (or recreates) the block cache's index file: what `BlockCacheOptions.openIndex` takes. Throws FsError EIO. */
export function openCacheStore(file: string): CacheStore {
  return CacheStore.open(file);
}
