import type Database from 'better-sqlite3';

// Not through db.ts (which calls repairHashIndex at open): meta is read and written here directly.
type Db = Database.Database;

/**
 * The content-hash index (`entries_hash`) set aside during a big bulk insert (a peer's snapshot
 * of a million entries). Content hashes are random, so each batch of inserts touched thousands
 * of the index's pages: 1M snapshot lines cost ~18 s of CPU with the index kept, ~5 s without it
 * plus ~2 s to build it again at the end (a sort). While it is away, lookups by hash (replica
 * choice, `vdfs find --hash`, serving blobs) still answer, by a scan of the table.
 *
 * Who dropped it is written in `meta` in the same transaction; openDb() builds it again when
 * that process is gone (a crash, a kill -9 half-way through a snapshot).
 */

const KEY = 'bulk.entries_hash-dropped-by';
const CREATE = 'CREATE INDEX IF NOT EXISTS entries_hash ON entries(hash) WHERE hash IS NOT NULL';

/** Drops the hash index (inside the caller's write transaction). */
export function dropHashIndex(db: Db): void {
  db.exec('DROP INDEX IF EXISTS entries_hash');
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(KEY, String(process.pid));
}

/** Builds the hash index again (inside the caller's write transaction); a no-op when it exists. */
export function restoreHashIndex(db: Db): void {
  db.exec(CREATE);
  db.prepare('DELETE FROM meta WHERE key = ?').run(KEY);
}

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** At open: the index back when it is missing and no live process set it aside. Throws what SQLite throws. */
export function repairHashIndex(db: Db): void {
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'entries_hash'").get()) return;
  const by = Number(db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(KEY));
  if (by !== process.pid && alive(by)) return;
  db.transaction(() => restoreHashIndex(db)).immediate();
}
