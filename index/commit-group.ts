import type Database from 'better-sqlite3';
import { closeShareEpoch, openShareEpoch } from './share-epoch';

type Db = Database.Database;

/** A group of relaxed commits is committed once no write has joined it for this long… */
export const GROUP_MS = 10;
/**
 * …or once it has been open this long. A burst of writes (a `tar x` into the mount) then
 * shares one commit per GROUP_MAX_MS instead of one per GROUP_MS: each commit writes every page
 * it touched (the table's and its four indexes' leaves, the location's stats) to the WAL again.
 */
export const GROUP_MAX_MS = 50;

interface Group {
  /** The group's transaction is open on the connection. */
  open: boolean;
  /** > 0 while a groupedWrite callback runs: its writes belong to the group. */
  depth: number;
  timer?: NodeJS.Timeout;
  /** performance.now() when the group opened, and when a write last joined it. */
  opened: number;
  lastWrite: number;
  /** The connection's own exec, prepare and pragma, not guarded (the group's own statements). */
  exec: (sql: string) => void;
  savepoint: Database.Statement;
  release: Database.Statement;
  rollbackTo: Database.Statement;
  /** synchronous=NORMAL (true) or back to FULL, marking the connection as needing syncIndex(). */
  relaxed: (on: boolean) => void;
  /** Told when a group's commit failed (its rows are then only on the disk until a rescan). */
  failed?: (err: unknown) => void;
}

const groups = new WeakMap<Db, Group>();

/**
 * Makes `db` able to group relaxed commits (groupedWrite) and guards every other way of writing
 * through it: a transaction, exec, pragma, close, or a statement's run outside a group's
 * callback first commits the open group. So a group never takes in another transaction's
 * writes, never delays their commit and never changes their durability (synchronous=FULL stays
 * theirs). Reads see the group's rows at once (one connection). Call once, right after opening
 * and before any statement is prepared. `relaxed(on)` switches synchronous=NORMAL on or back
 * off (see db.ts setRelaxedCommits). Never throws.
 */
export function guardConnection(db: Db, relaxed: (on: boolean) => void): void {
  const prepare = db.prepare.bind(db) as (sql: string) => Database.Statement;
  const exec = db.exec.bind(db);
  const pragma = db.pragma.bind(db);
  const transaction = db.transaction.bind(db);
  const close = db.close.bind(db);
  const g: Group = {
    open: false,
    depth: 0,
    opened: 0,
    lastWrite: 0,
    exec: (sql) => void exec(sql),
    savepoint: prepare('SAVEPOINT vdfs_group'),
    release: prepare('RELEASE vdfs_group'),
    rollbackTo: prepare('ROLLBACK TO vdfs_group'),
    relaxed,
  };
  groups.set(db, g);
  const before = () => {
    if (g.open && g.depth === 0) endGroup(db, g);
  };
  db.prepare = ((sql: string) => {
    const stmt = prepare(sql);
    // Statements that return no rows are the writes (INSERT/UPDATE/DELETE without RETURNING, DDL).
    if (!stmt.reader) {
      const run = stmt.run.bind(stmt);
      stmt.run = ((...args: unknown[]) => {
        before();
        return run(...args);
      }) as typeof stmt.run;
    }
    return stmt;
  }) as typeof db.prepare;
  db.exec = ((sql: string) => {
    before();
    return exec(sql);
  }) as typeof db.exec;
  db.pragma = ((source: string, options?: Database.PragmaOptions) => {
    before();
    return pragma(source, options);
  }) as typeof db.pragma;
  db.close = (() => {
    before();
    return close();
  }) as typeof db.close;
  type Fn = (...args: unknown[]) => unknown;
  db.transaction = ((fn: Fn) => {
    const t = transaction(fn) as unknown as Fn & Record<'deferred' | 'immediate' | 'exclusive' | 'default', Fn>;
    const guarded = (variant: Fn): Fn =>
      function (this: unknown, ...args: unknown[]) {
        before();
        return variant.apply(this, args);
      };
    return Object.assign(guarded(t), { deferred: guarded(t.deferred), immediate: guarded(t.immediate), exclusive: guarded(t.exclusive), default: guarded(t.default) });
  }) as unknown as typeof db.transaction;
}

/** Whether a group of relaxed commits is open on `db` (its writes not committed yet). */
export function groupIsOpen(db: Db): boolean {
  return groups.get(db)?.open === true;
}

/** Called with the error when a group's commit fails (the daemon logs it; a rescan restores the rows). */
export function onGroupFailed(db: Db, fn: (err: unknown) => void): void {
  const g = groups.get(db);
  if (g) g.failed = fn;
}

/**
 * Runs `fn` (synchronous writes of rows a rescan can rebuild: the local writer's refreshes and
 * hashes) inside the connection's open group of relaxed commits, as a savepoint: a throw undoes
 * only `fn`'s writes. The first write opens the group (BEGIN IMMEDIATE, synchronous=NORMAL); it
 * is committed once no write has joined it for GROUP_MS (at most GROUP_MAX_MS after it
 * opened), or before anything else writes through the connection (see
 * guardConnection), or by commitGroup(). Until then the rows are visible to this connection
 * only, and a killed process loses them (the start-up rescan finds the files again). Inside
 * someone else's open transaction (a rescan's batch) `fn` joins that one as a savepoint instead.
 * On a connection without guardConnection, a plain immediate transaction. Throws what `fn` or
 * SQLite throws (SQLITE_BUSY when another process holds the write lock past the busy timeout).
 */
export function groupedWrite<T>(db: Db, fn: () => T): T {
  const g = groups.get(db);
  if (!g) return db.transaction(fn).immediate();
  if (!g.open) {
    if (db.inTransaction) return db.transaction(fn)();
    g.relaxed(true);
    try {
      g.exec('BEGIN IMMEDIATE');
    } catch (err) {
      g.relaxed(false);
      throw err;
    }
    g.open = true;
    openShareEpoch(db);
    g.opened = performance.now();
    g.timer = setTimeout(() => dueGroup(db, g), GROUP_MS);
  }
  g.lastWrite = performance.now();
  g.depth++;
  try {
    g.savepoint.run();
    try {
      const r = fn();
      g.release.run();
      return r;
    } catch (err) {
      // An error that ended the whole transaction (SQLITE_FULL, IOERR) leaves no savepoint to undo.
      if (db.inTransaction) {
        g.rollbackTo.run();
        g.release.run();
      } else abandon(db, g);
      throw err;
    }
  } finally {
    g.depth--;
  }
}

/** The group's timer: commits unless writes are still coming and the group is young. */
function dueGroup(db: Db, g: Group): void {
  const now = performance.now();
  const quietAt = g.lastWrite + GROUP_MS;
  const last = g.opened + GROUP_MAX_MS;
  if (quietAt > now + 1 && last > now + 1) g.timer = setTimeout(() => dueGroup(db, g), Math.min(quietAt, last) - now);
  else commitGroup(db);
}

/** The group's transaction is gone (SQLite rolled it back after an error): nothing left to commit. */
function abandon(db: Db, g: Group): void {
  if (g.timer) clearTimeout(g.timer);
  g.timer = undefined;
  g.open = false;
  closeShareEpoch(db);
  g.relaxed(false);
}

/**
 * Commits the connection's open group now (fsync, shutdown, before a FULL commit or a read
 * through another connection that must see it). A failed commit is reported to onGroupFailed's
 * listener and rolled back. Never throws.
 */
export function commitGroup(db: Db): void {
  const g = groups.get(db);
  if (g?.open && g.depth === 0) endGroup(db, g);
}

function endGroup(db: Db, g: Group): void {
  if (g.timer) clearTimeout(g.timer);
  g.timer = undefined;
  g.open = false;
  try {
    g.exec('COMMIT');
  } catch (err) {
    // A statement still being iterated keeps the connection busy: commit once it is done.
    if (err instanceof TypeError && /busy/.test(err.message)) {
      g.open = true;
      g.timer = setTimeout(() => commitGroup(db), GROUP_MS);
      return;
    }
    try {
      if (db.inTransaction) g.exec('ROLLBACK');
    } catch {
      /* the connection reports its state at the next use */
    }
    g.failed?.(err);
  }
  closeShareEpoch(db);
  try {
    g.relaxed(false);
  } catch {
    /* a closed or broken connection: nothing to switch back */
  }
}
