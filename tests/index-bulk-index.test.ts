import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openDb } from '../index/db';
import { tempDir } from './helpers/cli';

// index/bulk-index.ts: a big snapshot sets the content-hash index aside. A process that dies
// meanwhile (kill -9 half-way) must not leave the index without it: the next open builds it
// again, unless the process that set it aside is still alive (it will build it at its end).

const KEY = 'bulk.entries_hash-dropped-by';

function hasIndex(file: string): boolean {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'entries_hash'").pluck().get() === 1;
  } finally {
    db.close();
  }
}

/** What a snapshot does when it sets the index aside, on behalf of process `pid`. */
function dropAs(file: string, pid: number): void {
  const db = new Database(file);
  db.exec('DROP INDEX entries_hash');
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run(KEY, String(pid));
  db.close();
}

t.test('an index set aside by a process that is gone is built again at the next open', async (t) => {
  const file = join(tempDir(t), 'index.db');
  openDb(file).close();
  const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
  dropAs(file, gone);
  t.notOk(hasIndex(file));
  const db = openDb(file);
  t.ok(hasIndex(file), 'entries_hash is back');
  t.equal(db.prepare('SELECT count(*) FROM meta WHERE key = ?').pluck().get(KEY), 0, 'and the marker is gone');
  t.match(db.prepare("SELECT sql FROM sqlite_master WHERE name = 'entries_hash'").pluck().get(), /WHERE hash IS NOT NULL/, 'the same partial index');
  db.close();
});

t.test('an index set aside by a live process is left to it', async (t) => {
  const file = join(tempDir(t), 'index.db');
  openDb(file).close();
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => live.kill('SIGKILL'));
  dropAs(file, live.pid!);
  openDb(file).close();
  t.notOk(hasIndex(file), 'another open does not rebuild it while that process runs');
  live.kill('SIGKILL');
  await new Promise((r) => live.once('exit', r));
  openDb(file).close();
  t.ok(hasIndex(file), 'once it is gone, the next open does');
});
