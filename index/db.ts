import Database from 'better-sqlite3';
import { FsError } from '../core/fs-error';
import { ensurePrivateFile } from '../core/private-files';
import { MIGRATIONS } from './migrations';
import { repairHashIndex } from './bulk-index';
import { commitGroup, groupedWrite, groupIsOpen, guardConnection } from './commit-group';

export type Db = Database.Database;

/**
 * Opens (creating when asked) the index at `file`: WAL, synchronous=FULL so an
 * acknowledged commit survives power loss, foreign keys on, migrations applied.
 * Throws FsError EIO when the file cannot be opened or is from a newer vdfs.
 */
/** Memory SQLite may use for one connection (config `index.cacheSize`, `index.mmapSize`). */
export interface DbMemory {
  cacheBytes: number;
  mmapBytes: number;
}

export const DEFAULT_DB_MEMORY: DbMemory = { cacheBytes: 16 * 1024 ** 2, mmapBytes: 0 };

export function openDb(file: string, opts: { readonly?: boolean; memory?: DbMemory } = {}): Db {
  let db: Db;
  try {
    // Created 0600 before SQLite opens it: SQLite gives -wal and -shm the mode of the database.
    if (!opts.readonly) for (const f of [file, `${file}-wal`, `${file}-shm`]) ensurePrivateFile(f, f === file);
    db = new Database(file, { fileMustExist: false, readonly: opts.readonly ?? false, timeout: 10_000 });
  } catch (err) {
    throw new FsError('EIO', `cannot open index ${file}: ${(err as Error).message}`, err);
  }
  // Before anything is prepared: every write through the connection then commits an open group first.
  if (!opts.readonly) guardConnection(db, (on) => setRelaxedCommits(db, on));
  if (!opts.readonly) db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // Byte limits, not a share of the index: a million-entry index must not grow the process.
  const mem = opts.memory ?? DEFAULT_DB_MEMORY;
  db.pragma(`cache_size = -${Math.max(64, Math.floor(mem.cacheBytes / 1024))}`);
  db.pragma(`mmap_size = ${Math.max(0, Math.floor(mem.mmapBytes))}`);
  try {
    if (!opts.readonly) {
      migrate(db);
      repairHashIndex(db);
    } else checkNotNewer(db);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Throws EIO when the index was written by a newer vdfs (a downgrade would corrupt it). */
function checkNotNewer(db: Db): number {
  const current = schemaVersion(db);
  if (current > MIGRATIONS.length) throw new FsError('EIO', `index ${db.name} has schema version ${current}, newer than this vdfs (${MIGRATIONS.length}); upgrade vdfs to open it`);
  return current;
}

/**
 * Applies every migration not yet applied, each in its own IMMEDIATE transaction so two
 * processes opening a fresh home at once do not both run it. Throws EIO for an index newer
 * than this code.
 */
export function migrate(db: Db): void {
  if (checkNotNewer(db) === MIGRATIONS.length) return;
  for (let v = 0; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      // Re-read under the write lock: another process may have migrated meanwhile.
      if (schemaVersion(db) !== v) return;
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

export function getMeta(db: Db, key: string): string | undefined {
  const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
  return row?.value;
}

export function setMeta(db: Db, key: string, value: string): void {
  db.prepare('INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
}

export function deleteMeta(db: Db, key: string): void {
  db.prepare('DELETE FROM meta WHERE key = ?').run(key);
}

// Connections with relaxed commits (synchronous=NORMAL) that no FULL commit has covered yet.
const unsynced = new WeakSet<Db>();

/**
 * Runs `fn` in an immediate transaction committed with synchronous=NORMAL: it survives a
 * killed process, and power loss only once syncIndex() or any later FULL commit has run. For
 * rows derived from a local file written through, whose bytes are not fsynced on close either
 * (a rescan rebuilds them): an fsync per written file made `tar x` into the mount ten times
 * slower. Throws what `fn` throws.
 */
export function relaxedTransaction<T>(db: Db, fn: () => T): T {
  // An open group of relaxed commits (index/commit-group.ts) is committed with fn's writes in
  // it: one commit, not the group's and then this one (a rename per file in `rsync -a`).
  if (groupIsOpen(db)) {
    const r = groupedWrite(db, fn);
    commitGroup(db);
    return r;
  }
  // Inside an open transaction (a rescan holding one across its batches) the pragma may not
  // change: join it as a savepoint; that transaction's own commit decides durability.
  if (db.inTransaction) return db.transaction(fn).immediate();
  const sync = syncPragmas(db);
  sync.normal.run();
  try {
    return db.transaction(fn).immediate();
  } finally {
    sync.full.run();
    unsynced.add(db);
  }
}

// Prepared once per connection: db.pragma() prepares its statement on every call, and a
// relaxed commit runs two of them per written file.
const pragmas = new WeakMap<Db, { normal: Database.Statement; full: Database.Statement }>();
function syncPragmas(db: Db): { normal: Database.Statement; full: Database.Statement } {
  let p = pragmas.get(db);
  if (!p) pragmas.set(db, (p = { normal: db.prepare('PRAGMA synchronous = NORMAL'), full: db.prepare('PRAGMA synchronous = FULL') }));
  return p;
}

/**
 * Switches the connection's later commits to synchronous=NORMAL (`on`) or back to FULL,
 * outside any transaction. After relaxed commits, syncIndex() makes them durable. For
 * batches of rows a rescan can rebuild (TxBatcher with `relaxed`): a scan's fsync per
 * 5,000 rows was ~12 % of a first scan's main thread.
 */
export function setRelaxedCommits(db: Db, on: boolean): void {
  const sync = syncPragmas(db);
  if (on) sync.normal.run();
  else {
    sync.full.run();
    unsynced.add(db);
  }
}

/**
 * Makes every earlier relaxed commit durable: one FULL commit fsyncs the whole WAL. Called
 * before anything derived from the index leaves the node (peer change feeds and snapshots,
 * whose sequence numbers must never be reused after a power loss) and on fsync().
 */
export function syncIndex(db: Db): void {
  commitGroup(db); // grouped rows first (index/commit-group.ts): this FULL commit then covers them
  if (!unsynced.has(db)) return;
  unsynced.delete(db);
  setMeta(db, 'synced-at', String(Date.now()));
}

/** Frees what the connection's page cache holds beyond its pages in use (after a rescan read the whole index). Never throws. */
export function shrinkMemory(db: Db): void {
  try {
    db.pragma('shrink_memory');
  } catch {
    /* a busy or closed connection keeps its cache */
  }
}

/**
 * A cheap reader of SQLite's `data_version`: it changes whenever another connection (the
 * scanner in another process, `vdfs location rm`) commits. Cache holders compare it on every
 * use. The returned function throws SqliteError when the database is closed.
 */
export function dataVersionReader(db: Db): () => number {
  const stmt = db.prepare('PRAGMA data_version').pluck();
  return () => stmt.get() as number;
}
