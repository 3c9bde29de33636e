import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { tempDir, until } from './helpers/cli';
import { openDb, relaxedTransaction, syncIndex, type Db } from '../index/db';
import { commitGroup, GROUP_MAX_MS, GROUP_MS, groupedWrite } from '../index/commit-group';
import { TxBatcher } from '../index/tx-batcher';

// The local writer's rows (a `tar x` into the mount: one per created file, one per flushed file,
// the hashes) share one relaxed commit (GROUP_MS after the last, GROUP_MAX_MS at most). Everything else that writes through
// the connection must keep its own commit: the group is committed before it runs.

function setup(t: { teardown(fn: () => void): void }): { db: Db; other: Db; rows: () => number[] } {
  const file = join(tempDir(t), 'x.db');
  const db = openDb(file);
  db.exec('CREATE TABLE IF NOT EXISTS x (v INTEGER)');
  const other = openDb(file, { readonly: true });
  t.teardown(() => {
    db.close();
    other.close();
  });
  const read = other.prepare('SELECT v FROM x ORDER BY v').pluck();
  return { db, other, rows: () => read.all() as number[] };
}

t.test('grouped rows: seen at once through the connection, by others after the group commits', async (t) => {
  const { db, rows } = setup(t);
  const ins = db.prepare('INSERT INTO x VALUES (?)');
  groupedWrite(db, () => ins.run(1));
  groupedWrite(db, () => ins.run(2));
  t.same(db.prepare('SELECT v FROM x ORDER BY v').pluck().all(), [1, 2], 'this connection sees both rows at once');
  t.same(rows(), [], 'another connection sees none yet (one open group)');
  t.ok(await until(() => rows().length === 2, 5_000), `committed together within ${GROUP_MS} ms, without anyone asking`);
  t.notOk(db.inTransaction, 'no transaction is left open');
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'the connection is back to synchronous=FULL');
});

t.test('a steady stream of writes is committed in groups: never held back past the stream', async (t) => {
  const { db, rows } = setup(t);
  const ins = db.prepare('INSERT INTO x VALUES (?)');
  // One write every 2 ms for 20 × GROUP_MAX_MS: each keeps the group "busy", so only the
  // group's age can commit it while the writes go on.
  const until_ = performance.now() + 20 * GROUP_MAX_MS;
  let v = 0;
  let seenWhileWriting = 0;
  while (performance.now() < until_) {
    groupedWrite(db, () => ins.run(++v));
    await new Promise((r) => setTimeout(r, 2));
    seenWhileWriting = rows().length;
  }
  t.ok(seenWhileWriting > 0, `another connection saw rows while the writes went on (${seenWhileWriting} of ${v})`);
  t.ok(await until(() => rows().length === v, 5_000), 'the last group is committed once the writes stop');
});

t.test('every other write commits the open group first and keeps its own commit', async (t) => {
  const { db, rows } = setup(t);
  const ins = db.prepare('INSERT INTO x VALUES (?)');
  const ways: [string, (v: number) => void][] = [
    ['a statement run on its own', (v) => ins.run(v)],
    ['db.transaction', (v) => db.transaction(() => ins.run(v))()],
    ['db.transaction().immediate', (v) => db.transaction(() => ins.run(v)).immediate()],
    ['relaxedTransaction', (v) => relaxedTransaction(db, () => ins.run(v))],
    ['exec', (v) => db.exec(`INSERT INTO x VALUES (${v})`)],
    [
      'a TxBatcher batch',
      (v) => {
        const tx = new TxBatcher(db, 10);
        tx.tick();
        ins.run(v);
        tx.flush();
      },
    ],
  ];
  let v = 0;
  for (const [what, write] of ways) {
    groupedWrite(db, () => ins.run(++v));
    const grouped = v;
    t.ok(db.inTransaction && !rows().includes(grouped), `${what}: the group is open before it`);
    write(++v);
    t.notOk(db.inTransaction, `${what}: nothing stays open after it`);
    t.ok(rows().includes(grouped) && rows().includes(v), `${what}: the group's row and its own are both committed when it returns`);
  }
  groupedWrite(db, () => ins.run(++v));
  syncIndex(db);
  t.ok(rows().includes(v), 'syncIndex (fsync) commits the group');
});

t.test('a grouped write that throws undoes only its own rows', async (t) => {
  const { db, rows } = setup(t);
  const ins = db.prepare('INSERT INTO x VALUES (?)');
  groupedWrite(db, () => ins.run(1));
  t.throws(
    () =>
      groupedWrite(db, () => {
        ins.run(2);
        throw new Error('refresh failed');
      }),
    /refresh failed/,
  );
  groupedWrite(db, () => ins.run(3));
  commitGroup(db);
  t.same(rows(), [1, 3], 'the rows before and after it are committed, its own are not');
});

t.test('inside a rescan batch, a grouped write joins that transaction', async (t) => {
  const { db, rows } = setup(t);
  const ins = db.prepare('INSERT INTO x VALUES (?)');
  const tx = new TxBatcher(db, 10);
  tx.tick();
  ins.run(1);
  groupedWrite(db, () => ins.run(2));
  tx.flush();
  t.notOk(db.inTransaction, 'no group was opened inside the batch');
  t.same(rows(), [1, 2], 'both committed with the batch');
});

t.test('kill -9: committed groups survive, the open one is gone (the start-up rescan restores its rows)', async (t) => {
  const file = join(tempDir(t), 'k.db');
  const dist = resolve(__dirname, '..', 'dist', 'index');
  const script = `
    const { openDb } = require(${JSON.stringify(join(dist, 'db.js'))});
    const { groupedWrite, commitGroup } = require(${JSON.stringify(join(dist, 'commit-group.js'))});
    const db = openDb(${JSON.stringify(file)});
    db.exec('CREATE TABLE IF NOT EXISTS x (v INTEGER)');
    const ins = db.prepare('INSERT INTO x VALUES (?)');
    groupedWrite(db, () => ins.run(1));
    commitGroup(db);
    groupedWrite(db, () => ins.run(2));
    process.kill(process.pid, 'SIGKILL');
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.signal, 'SIGKILL', r.stderr);
  const db = openDb(file, { readonly: true });
  t.teardown(() => db.close());
  t.same(db.prepare('SELECT v FROM x ORDER BY v').pluck().all(), [1], 'the committed group is there, the open one is not');
});
