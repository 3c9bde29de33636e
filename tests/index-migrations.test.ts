import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { migrate, openDb, schemaVersion } from '../index/db';
import { MIGRATIONS } from '../index/migrations';
import { isFsError } from '../providers/fs-error';
import { vdfs, vdfsOk } from './helpers/cli';

function temp(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-mig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const TABLES = ['blobs', 'changes', 'entries', 'locations', 'meta', 'nodes', 'peer_block_lists', 'pins', 'props', 'uploads', 'verified'];

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
  t.throws(() => db.prepare("INSERT INTO entries (location_id, parent_id, name, type) VALUES (1, 1, 'g', 'fifo')").run(), /CHECK/, 'type is checked');
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
