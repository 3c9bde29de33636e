import t from 'tap';
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon } from './helpers/peer';

t.test("a peer's setuid, sticky and file-type mode bits never reach the other node's FUSE stat", async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'suid.bin': 'x', 'typed.bin': 'y', 'd/plain.txt': 'z' });
  // A real setuid file on the attacker's side, scanned as such...
  chmodSync(join(a.src, 'suid.bin'), 0o4777);
  vdfsOk(a.home, ['scan']);
  // ...and an index edited to advertise file-type bits the scanner never writes (a hostile node
  // runs whatever code it likes; its real daemon then serves these rows).
  const db = new Database(join(a.home, 'index.db'));
  db.prepare("UPDATE entries SET mode = ? WHERE name = 'typed.bin'").run(0o140000 | 0o6755); // socket + setuid + setgid
  db.prepare("UPDATE entries SET mode = ? WHERE name = 'd'").run(0o1777 | 0o020000); // sticky + char-device bits
  db.close();
  // Keep A's own rescans from repairing its index: hold its scan lock (this test process is alive).
  mkdirSync(join(a.home, 'locks'), { recursive: true });
  writeFileSync(join(a.home, 'locks', 'scan.lock'), `${process.pid}\nhostile\n`);
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());

  const b = makeNode(dir, 'beta');
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const mnt = join(dir, 'mnt');
  const mb = await startMount(b.home, mnt);
  t.teardown(() => mb.stop());

  const suid = statSync(join(mnt, 'adocs', 'suid.bin'));
  t.equal(suid.mode.toString(8), (0o100777).toString(8), 'setuid dropped, a regular file with its permission bits');
  const typed = statSync(join(mnt, 'adocs', 'typed.bin'));
  t.ok(typed.isFile(), "the file type comes from our own type field, not from the peer's mode");
  t.equal(typed.mode.toString(8), (0o100755).toString(8), 'socket, setuid and setgid bits dropped');
  const d = statSync(join(mnt, 'adocs', 'd'));
  t.ok(d.isDirectory(), 'still a directory');
  t.equal(d.mode.toString(8), (0o040777).toString(8), 'sticky and device bits dropped');
});
