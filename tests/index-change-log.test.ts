// The change log is written only for locations shared with a peer (issue 19: it was half of a
// million-file index, and nobody reads it otherwise: a newly shared location starts from a snapshot).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '../index/db';
import { EntryStore, type EntryFields } from '../index/entries';

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
