import t from 'tap';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon } from './helpers/peer';

const SIZE = 3 * 1024 * 1024 + 5; // four blocks: block hashes cannot be checked against the file hash one by one

/**
 * A hostile node: its file holds the attacker's bytes X, but its index claims they are the
 * popular content H, with block hashes of X (so X verifies against the list it advertises).
 * Its rescans are kept off so the lie stays (a hostile node runs whatever code it likes).
 */
function hostileNode(dir: string, popular: string, evil: Buffer): { home: string } {
  const a = makeNode(dir, 'mallory', { 'pop.bin': evil });
  const evilHash = b3sum(join(a.src, 'pop.bin'));
  const db = new Database(join(a.home, 'index.db'));
  db.prepare('UPDATE blobs SET hash = unhex(?) WHERE hash = unhex(?)').run(popular, evilHash);
  db.prepare('UPDATE entries SET hash = unhex(?) WHERE hash = unhex(?)').run(popular, evilHash);
  db.close();
  mkdirSync(join(a.home, 'locks'), { recursive: true });
  writeFileSync(join(a.home, 'locks', 'scan.lock'), `${process.pid}\nhostile\n`);
  return a;
}

t.test('a peer advertising fake multi-block hashes for content an honest peer has: reads give the real bytes, never the fake ones', async (t) => {
  const dir = tempDir(t);
  const good = randomBytes(SIZE);
  const evil = randomBytes(SIZE);
  writeFileSync(join(dir, 'good'), good);
  writeFileSync(join(dir, 'evil'), evil);
  const H = b3sum(join(dir, 'good'));
  const m = hostileNode(dir, H, evil);
  const b = makeNode(dir, 'bob', { 'copy.bin': good });
  const dm = await startPeerDaemon(m.home);
  t.teardown(() => dm.stop());
  const db = await startPeerDaemon(b.home);
  t.teardown(() => db.stop());
  const v = makeNode(dir, 'victor');
  // The hostile list arrives first.
  pair(m.home, v.home, ['docs']);
  vdfsOk(v.home, ['location', 'add', 'mdocs', 'peer://mallory/docs']);
  pair(b.home, v.home, ['docs']);
  vdfsOk(v.home, ['location', 'add', 'bdocs', 'peer://bob/docs']);

  const mnt = join(dir, 'mnt');
  const mv = await startMount(v.home, mnt);
  t.teardown(() => mv.stop());
  for (const p of ['bdocs/copy.bin', 'mdocs/pop.bin']) {
    const out = join(dir, p.replace('/', '-'));
    const r = spawnSync('cp', [join(mnt, p), out], { timeout: 60_000 });
    if (r.status === 0) {
      const got = b3sum(out);
      t.not(got, b3sum(join(dir, 'evil')), `${p}: not the attacker's bytes`);
      t.equal(got, H, `${p}: b3sum of what the mount returned is H`);
    } else t.fail(`${p}: the read failed (${r.stderr.toString().trim()}); the honest replica should have served it`);
  }
  const cat = vdfs(v.home, ['cat', '/mdocs/pop.bin']);
  t.equal(cat.code, 0, `vdfs cat of the hostile path works (${cat.stderr.trim()})`);
});

t.test('a peer advertising fake multi-block hashes for content this node has locally: the local block list wins', async (t) => {
  const dir = tempDir(t);
  const good = randomBytes(SIZE);
  const evil = randomBytes(SIZE);
  writeFileSync(join(dir, 'good'), good);
  writeFileSync(join(dir, 'evil'), evil);
  const H = b3sum(join(dir, 'good'));
  const m = hostileNode(dir, H, evil);
  const dm = await startPeerDaemon(m.home);
  t.teardown(() => dm.stop());
  const v = makeNode(dir, 'victor');
  pair(m.home, v.home, ['docs']);
  vdfsOk(v.home, ['location', 'add', 'mdocs', 'peer://mallory/docs']);
  // Only now does the same content appear in a local folder (scanned after the hostile list arrived).
  const mine = join(dir, 'mine');
  mkdirSync(mine);
  writeFileSync(join(mine, 'same.bin'), good);
  vdfsOk(v.home, ['location', 'add', 'mine', mine]);
  vdfsOk(v.home, ['scan', 'mine']);

  const mnt = join(dir, 'mnt');
  const mv = await startMount(v.home, mnt);
  t.teardown(() => mv.stop());
  const out = join(dir, 'out');
  const cp = spawnSync('cp', [join(mnt, 'mdocs', 'pop.bin'), out], { timeout: 60_000 });
  t.equal(cp.status, 0, `the read through the hostile path succeeds (${cp.stderr.toString().trim()})`);
  if (cp.status === 0) {
    t.equal(b3sum(out), H, 'with the real bytes (served by the local replica)');
    t.not(b3sum(out), b3sum(join(dir, 'evil')), "never the attacker's");
  }
});

t.test("blocks read against one peer's own list are never served for that hash once a trusted list exists", async (t) => {
  const dir = tempDir(t);
  const good = randomBytes(SIZE);
  const evil = randomBytes(SIZE);
  writeFileSync(join(dir, 'good'), good);
  writeFileSync(join(dir, 'evil'), evil);
  const H = b3sum(join(dir, 'good'));
  const m = hostileNode(dir, H, evil);
  const dm = await startPeerDaemon(m.home);
  t.teardown(() => dm.stop());
  const v = makeNode(dir, 'victor');
  pair(m.home, v.home, ['docs']);
  vdfsOk(v.home, ['location', 'add', 'mdocs', 'peer://mallory/docs']);
  const mnt = join(dir, 'mnt');
  const out = join(dir, 'out');
  // Only the hostile node has "H": reading it reads that node's own file (its list, its bytes),
  // and fills this node's block cache.
  let mv = await startMount(v.home, mnt);
  spawnSync('cp', [join(mnt, 'mdocs', 'pop.bin'), out], { timeout: 60_000 });
  await mv.stop();
  t.ok(Number(vdfsOk(v.home, ['cache', 'stats', '--json']).json<{ blocks: number }>().blocks) > 0, 'the cache holds blocks of it');
  // The real content arrives locally: its list, computed here, now decides.
  const mine = join(dir, 'mine');
  mkdirSync(mine);
  writeFileSync(join(mine, 'same.bin'), good);
  vdfsOk(v.home, ['location', 'add', 'mine', mine]);
  vdfsOk(v.home, ['scan', 'mine']);
  mv = await startMount(v.home, mnt);
  t.teardown(() => mv.stop());
  const cp = spawnSync('cp', [join(mnt, 'mdocs', 'pop.bin'), out], { timeout: 60_000 });
  t.equal(cp.status, 0, `read again (${cp.stderr.toString().trim()})`);
  t.equal(b3sum(out), H, 'the real bytes: the cached blocks of the peer-only read are not reused');
});
