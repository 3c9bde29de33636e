import type Database from 'better-sqlite3';

// The connection type, not db.ts's alias: db.ts reaches this module through commit-group.ts.
type Db = Database.Database;

/**
 * Lets the change log's "is this location shared?" check be answered once per batch of a scan
 * instead of once per written row (a JSON query over `meta`: ~11 % of a first scan's main
 * thread). While a TxBatcher holds a write transaction no other connection can commit, so
 * what is shared can change only through this connection: every writer of shares in index/
 * calls sharesChanged(). An epoch is open only inside a batcher's transaction; outside one
 * every write asks SQLite. Never throws.
 */
const open = new WeakMap<Db, number>();
let next = 1;

/** A batcher opened its write transaction. */
export function openShareEpoch(db: Db): void {
  open.set(db, next++);
}

/** That transaction ended (committed or rolled back). */
export function closeShareEpoch(db: Db): void {
  open.delete(db);
}

/** What is shared was written through this connection: answers remembered so far are stale. */
export function sharesChanged(db: Db): void {
  if (open.has(db)) open.set(db, next++);
}

/** The current epoch, or undefined when no batch transaction is open (then nothing may be remembered). */
export function shareEpoch(db: Db): number | undefined {
  return open.get(db);
}
