import t from 'tap';
import { join } from 'node:path';
import { tempDir } from './helpers/cli';
import { openDb } from '../index/db';
import { TxBatcher } from '../index/tx-batcher';

// A rescan inside the daemon shares its connection with the mount's writer: a transaction it
// held open across its awaits took the writer's changes in, uncommitted until the scan's next
// batch (and gone with a rollback). Per turn, every tick's transaction ends before other
// callbacks run.
t.test('perTurn: the transaction ends with the turn; a later change commits on its own', async (t) => {
  const file = join(tempDir(t), 'x.db');
  const db = openDb(file);
  const other = openDb(file, { readonly: true });
  t.teardown(() => {
    db.close();
    other.close();
  });
  db.exec('CREATE TABLE IF NOT EXISTS x (v INTEGER)');
  const count = () => (other.prepare('SELECT count(*) FROM x').pluck().get() as number) ?? 0;
  for (const perTurn of [false, true]) {
    db.exec('DELETE FROM x');
    const tx = new TxBatcher(db, 1000, false, perTurn);
    tx.tick();
    db.prepare('INSERT INTO x VALUES (1)').run();
    await new Promise((r) => setImmediate(r));
    t.equal(db.inTransaction, !perTurn, perTurn ? 'per turn: committed when the turn ended' : 'batched: still open in the next turn');
    // What the mount's writer does in a later callback: its own transaction.
    db.transaction(() => db.prepare('INSERT INTO x VALUES (2)').run()).immediate();
    t.equal(count(), perTurn ? 2 : 0, perTurn ? 'both rows committed, each on its own' : "the writer's row waits for the scan's commit");
    tx.abort();
    t.equal(count(), perTurn ? 2 : 0, perTurn ? 'nothing to roll back' : "and a rollback of the scan's batch takes it away");
  }
});
