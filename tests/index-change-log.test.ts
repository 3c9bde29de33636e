// The change log is written only for locations shared with a peer (issue 19: it was half of a
// million-file index, and nobody reads it otherwise: a newly shared location starts from a snapshot).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '../index/db';
import { EntryStore, type EntryFields } from '../index/entries';
import { PeerStore } from '../index/peer-store';
import { TxBatcher } from '../index/tx-batcher';

const FILE: EntryFields = { type: 'file', size: 1, mtimeSec: 0, mtimeNsec: 0, mode: 0o644, version: '1:1:0', hash: null, target: null };
const DIR: EntryFields = { ...FILE, type: 'dir', size: 0, version: '2:0:0' };

t.test('changes are logged only while the location is shared, and from the write after the share', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = openDb(join(dir, 'index.db'));
  t.teardown(() => db.close());
  db.exec(`INSERT INTO nodes (id, name, is_self) VALUES ('me', 'me', 1);
    INSERT INTO locations (name, uri, kind, owner_node, created_at) VALUES ('a', '/a', 'local', 'me', 0), ('b', '/b', 'local', 'me', 0);`);
  const entries = new EntryStore(db);
  const logged = () => db.prepare('SELECT location_id AS loc, op, path FROM changes ORDER BY seq').all();
  const ra = entries.createRoot(1, DIR);
  const rb = entries.createRoot(2, DIR);
  entries.insert(1, ra.id, 'x', FILE, 'x');
  t.same(logged(), [], 'nothing logged while no peer follows either location');

  // Shared with a peer by another connection (the CLI's `vdfs peer share` while a daemon writes).
  const other = openDb(join(dir, 'index.db'));
  other.prepare("INSERT INTO meta (key, value) VALUES ('peer.share.p1', ?)").run(JSON.stringify(['b']));
  other.close();
  entries.insert(1, ra.id, 'y', FILE, 'y');
  const f = entries.insert(2, rb.id, 'z', FILE, 'z');
  entries.update(entries.get(f)!, { ...FILE, hash: 'h' }, 'z');
  entries.remove(entries.get(f)!, 'z');
  t.same(
    logged(),
    [
      { loc: 2, op: 'put', path: 'z' },
      { loc: 2, op: 'put', path: 'z' },
      { loc: 2, op: 'delete', path: 'z' },
    ],
    'only the shared location logs, from its first write after the share',
  );

  // Unshared again (same connection): its writes stop being logged.
  db.prepare("UPDATE meta SET value = '[]' WHERE key = 'peer.share.p1'").run();
  entries.insert(2, rb.id, 'w', FILE, 'w');
  t.equal(logged().length, 3, 'no log once no peer follows it');
});

t.test("inside a scan's batch the share is asked once, and a share written through the same connection is seen at the next write", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = openDb(join(dir, 'index.db'));
  t.teardown(() => db.close());
  db.exec(`INSERT INTO nodes (id, name, is_self) VALUES ('me', 'me', 1);
    INSERT INTO locations (name, uri, kind, owner_node, created_at) VALUES ('a', '/a', 'local', 'me', 0);`);
  const entries = new EntryStore(db);
  const peers = new PeerStore(db);
  peers.upsert({ id: 'p1', name: 'p1', addresses: [] });
  const logged = () => db.prepare('SELECT op, path FROM changes ORDER BY seq').all();
  const root = entries.createRoot(1, DIR);
  const tx = new TxBatcher(db, 1000, true);
  tx.tick(3);
  entries.insertMany(
    1,
    root.id,
    ['a', 'b', 'c'].map((name) => ({ name, fields: FILE, path: name })),
  );
  t.same(logged(), [], 'unshared: nothing logged');
  peers.setShares('p1', ['a']); // the daemon accepting an invitation while its rescan holds the batch
  tx.tick();
  entries.insert(1, root.id, 'd', FILE, 'd');
  peers.setShares('p1', []);
  tx.tick();
  entries.insert(1, root.id, 'e', FILE, 'e');
  tx.flush();
  t.same(logged(), [{ op: 'put', path: 'd' }], 'the write after the share is logged, the one after the unshare is not');

  // Shared by another connection between two batches: the next batch sees it.
  const other = openDb(join(dir, 'index.db'));
  other.prepare("UPDATE meta SET value = ? WHERE key = 'peer.share.p1'").run(JSON.stringify(['a']));
  other.close();
  tx.tick();
  entries.insert(1, root.id, 'f', FILE, 'f');
  tx.flush();
  t.same(
    logged(),
    [
      { op: 'put', path: 'd' },
      { op: 'put', path: 'f' },
    ],
    'a share committed by another connection is seen by the next batch',
  );
});

t.test('insertMany: ids in order of the rows; a taken name inserts none of its chunk', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = openDb(join(dir, 'index.db'));
  t.teardown(() => db.close());
  db.exec(`INSERT INTO nodes (id, name, is_self) VALUES ('me', 'me', 1);
    INSERT INTO locations (name, uri, kind, owner_node, created_at) VALUES ('a', '/a', 'local', 'me', 0);`);
  const entries = new EntryStore(db);
  const root = entries.createRoot(1, DIR);
  const d = entries.insert(1, root.id, 'sub', DIR, 'sub');
  entries.remove(entries.get(d)!, 'sub'); // the highest id is gone: new ids are not simply "last + 1"
  const names = Array.from({ length: 250 }, (_, i) => `n${(i * 7919) % 250}`);
  const ids = entries.insertMany(
    1,
    root.id,
    names.map((name, i) => ({ name, fields: { ...FILE, size: i }, path: name })),
  );
  t.equal(ids.length, names.length);
  t.same(
    names.map((n) => entries.child(root.id, n)?.id),
    ids,
    'each id is the row of its name',
  );
  t.same(
    ids.map((id) => entries.get(id)!.size),
    names.map((_, i) => i),
    'each row holds its own fields',
  );
  t.throws(
    () =>
      entries.insertMany(1, root.id, [
        { name: 'new1', fields: FILE, path: 'new1' },
        { name: 'n3', fields: FILE, path: 'n3' },
      ]),
    { code: 'EEXIST' },
  );
  t.equal(entries.child(root.id, 'new1'), undefined, 'the chunk holding a taken name is not inserted');
  t.equal((db.prepare('SELECT entries FROM location_stats WHERE location_id = 1').get() as { entries: number }).entries, 251, 'the counters saw every row');
});
