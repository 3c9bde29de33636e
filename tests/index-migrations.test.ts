import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { migrate, openDb, schemaVersion } from '../index/db';
import { EntryStore } from '../index/entries';
import { MIGRATIONS } from '../index/migrations';
import { isFsError } from '../core/fs-error';
import { vdfs, vdfsOk } from './helpers/cli';

function temp(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-mig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const TABLES = ['blobs', 'changes', 'entries', 'location_stats', 'locations', 'meta', 'nodes', 'peer_block_lists', 'pins', 'props', 'remote_deletes', 'uploads', 'verified'];

function tables(db: Database.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
}

t.test('migrations run from an empty database, in order, to the latest version', async (t) => {
  const file = join(temp(t), 'index.db');
  const db = openDb(file);
  t.equal(schemaVersion(db), MIGRATIONS.length, 'user_version is the number of migrations');
  t.same(tables(db), TABLES, 'every table of the data model exists');
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'synchronous=FULL');
  t.equal(db.pragma('foreign_keys', { simple: true }), 1);
  // The schema works: a node, a location, a root entry, a change, cascades.
  db.prepare("INSERT INTO nodes (id, name, is_self) VALUES ('n1', 'me', 1)").run();
  db.prepare("INSERT INTO locations (name, uri, kind, owner_node, created_at) VALUES ('a', '/x', 'local', 'n1', 0)").run();
  db.prepare("INSERT INTO entries (location_id, parent_id, name, type) VALUES (1, NULL, '', 'dir')").run();
  db.prepare("INSERT INTO entries (location_id, parent_id, name, type) VALUES (1, 1, 'f', 'file')").run();
  t.throws(() => db.prepare("INSERT INTO entries (location_id, parent_id, name, type) VALUES (1, 1, 'f', 'file')").run(), /UNIQUE/, 'names are unique per directory');
  t.throws(() => db.prepare("INSERT INTO entries (location_id, parent_id, name, type) VALUES (1, NULL, '', 'dir')").run(), /UNIQUE/, 'one root per location');
  t.throws(() => db.prepare("INSERT INTO entries (location_id, parent_id, name, type) VALUES (1, 1, 'g', 'pipe')").run(), /CHECK/, 'type is checked');
  for (const type of ['fifo', 'socket', 'chardev', 'blockdev'])
    db.prepare('INSERT INTO entries (location_id, parent_id, name, type, rdev) VALUES (1, 1, ?, ?, 259)').run(`s-${type}`, type);
  db.prepare('DELETE FROM locations WHERE id = 1').run();
  t.equal((db.prepare('SELECT count(*) AS n FROM entries').get() as { n: number }).n, 0, 'removing a location cascades to its entries');
  db.close();
});

t.test('each migration applies on top of the previous one', async (t) => {
  const file = join(temp(t), 'index.db');
  const db = new Database(file);
  for (let v = 0; v < MIGRATIONS.length; v++) {
    db.exec(MIGRATIONS[v]);
    db.pragma(`user_version = ${v + 1}`);
  }
  const stepwise = tables(db);
  db.close();
  const db2 = openDb(file);
  t.same(tables(db2), stepwise, 'openDb adds nothing to a database migrated step by step');
  t.equal(schemaVersion(db2), MIGRATIONS.length);
  db2.close();
});

t.test('reopening is idempotent and keeps the data', async (t) => {
  const file = join(temp(t), 'index.db');
  const db = openDb(file);
  db.prepare("INSERT INTO meta (key, value) VALUES ('k', 'v')").run();
  db.close();
  for (let i = 0; i < 3; i++) {
    const again = openDb(file);
    t.equal(schemaVersion(again), MIGRATIONS.length, `reopen ${i + 1}: same version`);
    t.same(tables(again), TABLES);
    t.equal((again.prepare("SELECT value FROM meta WHERE key = 'k'").get() as { value: string }).value, 'v', 'data kept');
    migrate(again); // a second migrate on an open db is a no-op too
    again.close();
  }
});

t.test('an index from a newer vdfs is refused with a clear error, and left untouched', async (t) => {
  const dir = temp(t);
  const file = join(dir, 'index.db');
  const db = openDb(file);
  db.pragma(`user_version = ${MIGRATIONS.length + 5}`);
  db.close();
  const before = statSync(file).mtimeMs;
  try {
    openDb(file).close();
    t.fail('a newer index was opened');
  } catch (err) {
    t.ok(isFsError(err), 'FsError');
    t.match((err as Error).message, /newer than this vdfs.*upgrade vdfs/);
  }
  try {
    openDb(file, { readonly: true }).close();
    t.fail('a newer index was opened read-only');
  } catch (err) {
    t.match((err as Error).message, /newer than this vdfs/, 'read-only opens check the version too');
  }
  const check = new Database(file, { readonly: true });
  t.equal(check.pragma('user_version', { simple: true }), MIGRATIONS.length + 5, 'version not lowered');
  check.close();
  t.equal(statSync(file).mtimeMs, before, 'file not modified');
});

t.test('the CLI reports a newer index with an exit code and what to do', async (t) => {
  const home = join(temp(t), 'home');
  vdfsOk(home, ['init']);
  const db = new Database(join(home, 'index.db'));
  db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  db.close();
  const r = vdfs(home, ['status', '--json']);
  t.not(r.code, 0, 'non-zero exit');
  t.match(r.stderr, /newer than this vdfs.*upgrade vdfs/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.equal(r.stdout, '', 'nothing on stdout');
});

/** The per-location counters, recomputed the slow way from entries. */
function recount(db: Database.Database): unknown[] {
  return db
    .prepare(
      `SELECT location_id, count(*) AS entries, sum(type = 'file') AS files, sum(type = 'dir') AS dirs,
    coalesce(sum(CASE WHEN type = 'file' THEN size END), 0) AS bytes, sum(type = 'file' AND hash IS NULL) AS unhashed
    FROM entries GROUP BY location_id ORDER BY location_id`,
    )
    .all();
}
/** A content hash as the schema before migration 7 stored it (64 hex digits). */
const H1 = 'a1'.repeat(32);
/** The entry columns, the hash as hex whatever the schema stores. */
const ENTRY_COLS =
  "id, location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, uid, gid, version, CASE typeof(hash) WHEN 'blob' THEN lower(hex(hash)) ELSE hash END AS hash, target";

const stats = (db: Database.Database) => db.prepare('SELECT location_id, entries, files, dirs, bytes, unhashed FROM location_stats WHERE entries > 0 ORDER BY location_id').all();

t.test('location counters: filled from an old-schema index, kept exact by inserts, updates, moves and cascades', async (t) => {
  const file = join(temp(t), 'index.db');
  const stepOf = MIGRATIONS.findIndex((m) => m.includes('CREATE TABLE location_stats'));
  t.ok(stepOf > 0, 'the counters come from a later migration');
  // A home as the previous vdfs left it: every migration before the counters, with entries.
  const old = new Database(file);
  for (let v = 0; v < stepOf; v++) {
    old.exec(MIGRATIONS[v]);
    old.pragma(`user_version = ${v + 1}`);
  }
  old.exec(`INSERT INTO nodes (id, name, is_self) VALUES ('n1', 'me', 1);
    INSERT INTO locations (name, uri, kind, owner_node, created_at) VALUES ('a', '/x', 'local', 'n1', 0), ('b', '/y', 'local', 'n1', 0);
    INSERT INTO entries (id, location_id, parent_id, name, type) VALUES (1, 1, NULL, '', 'dir'), (2, 2, NULL, '', 'dir');
    INSERT INTO entries (id, location_id, parent_id, name, type, size, hash) VALUES (3, 1, 1, 'f', 'file', 10, '${H1}'), (4, 1, 1, 'g', 'file', 5, NULL), (5, 1, 1, 'd', 'dir', 0, NULL);
    INSERT INTO entries (id, location_id, parent_id, name, type, size, hash) VALUES (6, 1, 5, 'x', 'file', 7, NULL), (7, 2, 2, 'y', 'file', 3, '${H1}');`);
  old.close();
  const db = openDb(file);
  t.equal(schemaVersion(db), MIGRATIONS.length);
  t.same(stats(db), recount(db), 'counters filled from the existing entries');
  t.same(db.prepare('SELECT files, bytes, unhashed FROM location_stats WHERE location_id = 1').get(), { files: 3, bytes: 22, unhashed: 2 });
  db.exec(`INSERT INTO entries (location_id, parent_id, name, type, size) VALUES (1, 5, 'z', 'file', 100)`);
  t.same(stats(db), recount(db), 'after an insert');
  db.exec(`UPDATE entries SET hash = 'k', size = 8 WHERE id = 4`);
  t.same(stats(db), recount(db), 'after a hash and size update');
  db.exec(`UPDATE entries SET type = 'dir', size = 0 WHERE id = 3`);
  t.same(stats(db), recount(db), 'after a type change');
  db.exec(`DELETE FROM entries WHERE id = 5`);
  t.same(stats(db), recount(db), 'after removing a directory (its children go by cascade)');
  t.equal((db.prepare('SELECT files FROM location_stats WHERE location_id = 1').get() as { files: number }).files, 1, 'the cascade was counted');
  db.exec('DELETE FROM locations WHERE id = 2');
  t.same(stats(db), recount(db), 'after removing a location');
  t.equal((db.prepare('SELECT count(*) AS n FROM location_stats WHERE location_id = 2').get() as { n: number }).n, 0, 'its counters are gone');
  db.close();
});

t.test('migration 6 (special files): a home made by the previous schema keeps every entry, property, verification and counter', async (t) => {
  const file = join(temp(t), 'index.db');
  const step = MIGRATIONS.findIndex((m) => m.includes('entries_v6'));
  t.equal(step, 5, 'migration 6 rebuilds the entries table');
  // A home as the previous vdfs left it (foreign keys on, as openDb runs): entries in a tree,
  // WebDAV properties, fsck verifications, counters.
  const old = new Database(file);
  old.pragma('foreign_keys = ON');
  for (let v = 0; v < step; v++) {
    old.exec(MIGRATIONS[v]);
    old.pragma(`user_version = ${v + 1}`);
  }
  old.exec(`INSERT INTO nodes (id, name, is_self) VALUES ('n1', 'me', 1);
    INSERT INTO locations (name, uri, kind, owner_node, created_at) VALUES ('a', '/x', 'local', 'n1', 0);
    INSERT INTO entries (id, location_id, parent_id, name, type) VALUES (1, 1, NULL, '', 'dir');
    INSERT INTO entries (id, location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, uid, gid, version, hash) VALUES
      (5, 1, 1, 'd', 'dir', 0, 10, 11, 493, 7, 8, '1:0:10', NULL), (9, 1, 5, 'f', 'file', 3, 12, 13, 420, 7, 8, '2:3:12', '${H1}');
    INSERT INTO entries (id, location_id, parent_id, name, type, target, version) VALUES (12, 1, 1, 'l', 'symlink', 'd/f', '3:3:1');
    INSERT INTO props (entry_id, ns, name, value) VALUES (9, 'DAV:', 'x', 'v'), (5, 'urn:y', 'z', 'w');
    INSERT INTO verified (entry_id, hash, at, ok) VALUES (9, '${H1}', 100, 1);`);
  const before = {
    entries: old.prepare(`SELECT ${ENTRY_COLS} FROM entries ORDER BY id`).all(),
    props: old.prepare('SELECT * FROM props ORDER BY entry_id, ns').all(),
    verified: old.prepare('SELECT * FROM verified').all(),
    stats: stats(old),
  };
  old.close();

  const db = openDb(file);
  t.equal(schemaVersion(db), MIGRATIONS.length);
  t.same(db.prepare(`SELECT ${ENTRY_COLS} FROM entries ORDER BY id`).all(), before.entries, 'every entry kept, same ids');
  t.same(db.prepare('SELECT * FROM props ORDER BY entry_id, ns').all(), before.props, 'WebDAV properties kept (not lost to the cascade)');
  t.same(db.prepare('SELECT entry_id, lower(hex(hash)) AS hash, at, ok FROM verified').all(), before.verified, 'fsck verifications kept');
  t.same(stats(db), before.stats, 'counters unchanged');
  t.same(db.pragma('foreign_key_check'), [], 'no dangling reference');
  t.same(db.pragma('integrity_check', { simple: true }), 'ok');
  t.same(tables(db), TABLES, 'no table left over');
  const idx = (db.prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'entries' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  t.same(
    idx,
    ['entries', 'entries_child', 'entries_hash', 'entries_location', 'entries_root', 'location_stats_delete', 'location_stats_insert', 'location_stats_update'],
    'indexes and triggers made again',
  );
  // The new types, with a device number; the counters, cascades and uniqueness still work.
  db.prepare("INSERT INTO entries (location_id, parent_id, name, type, rdev) VALUES (1, 5, 'null', 'chardev', 259)").run();
  db.prepare("INSERT INTO entries (location_id, parent_id, name, type) VALUES (1, 5, 'p', 'fifo')").run();
  t.equal((db.prepare("SELECT rdev FROM entries WHERE name = 'null'").get() as { rdev: number }).rdev, 259);
  t.throws(() => db.prepare("INSERT INTO entries (location_id, parent_id, name, type) VALUES (1, 5, 'p', 'fifo')").run(), /UNIQUE/);
  t.same(stats(db), recount(db), 'counters follow inserts of the new types');
  db.prepare('DELETE FROM entries WHERE id = 5').run();
  t.equal((db.prepare('SELECT count(*) AS n FROM entries').get() as { n: number }).n, 2, 'removing a directory cascades to its children (self reference renamed)');
  t.equal((db.prepare('SELECT count(*) AS n FROM props').get() as { n: number }).n, 0, 'and to their properties');
  t.equal((db.prepare('SELECT count(*) AS n FROM verified').get() as { n: number }).n, 0, 'and to their verifications');
  t.same(stats(db), recount(db), 'counters after the cascade');
  db.close();
});

t.test('the upload queue is looked up by location and path through an index, not a scan', async (t) => {
  const db = openDb(join(temp(t), 'index.db'));
  for (const sql of [
    "SELECT * FROM uploads WHERE location_id = 1 AND path = 'a' AND state = 'pending' ORDER BY id DESC LIMIT 1",
    "SELECT * FROM uploads WHERE location_id = 1 AND (path = 'a' OR path LIKE 'a/%' ESCAPE '\\')",
  ]) {
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail).join('; ');
    t.match(plan, /USING INDEX uploads_at/, `${sql.slice(0, 60)}…: ${plan}`);
  }
  db.close();
});

// EntryStore.update with a row just read skips the counters' trigger when type, size and hash stay
// (a chmod or utimens): the row must still take every other field, and the counters stay exact.
t.test('an entry update that keeps type, size and hash writes the other fields and keeps the counters exact', async (t) => {
  const db = openDb(join(temp(t), 'index.db'));
  db.exec(`INSERT INTO nodes (id, name, is_self) VALUES ('n1', 'me', 1);
    INSERT INTO locations (name, uri, kind, owner_node, created_at) VALUES ('a', '/x', 'local', 'n1', 0);
    INSERT INTO entries (id, location_id, parent_id, name, type) VALUES (1, 1, NULL, '', 'dir');
    INSERT INTO entries (id, location_id, parent_id, name, type, size, mode, version) VALUES (2, 1, 1, 'f', 'file', 10, 420, 'v1');`);
  const entries = new EntryStore(db);
  const before = entries.get(2)!;
  entries.update(before, { ...before, mode: 0o600, mtimeSec: 1234, mtimeNsec: 5, version: 'v2' }, 'f', true);
  const after = entries.get(2)!;
  t.same([after.mode, after.mtimeSec, after.mtimeNsec, after.version, after.size, after.hash], [0o600, 1234, 5, 'v2', 10, null], 'mode, times and version written');
  t.same(stats(db), recount(db), 'counters exact');
  entries.update(after, { ...after, size: 99, hash: H1 }, 'f', true);
  t.same([entries.get(2)!.size, entries.get(2)!.hash], [99, H1], 'a new size and hash are written too');
  t.same(stats(db), recount(db), 'counters exact after the size and hash changed');
  t.match(stats(db), [{ bytes: 99, unhashed: 0 }], 'and they moved');
  db.close();
});
