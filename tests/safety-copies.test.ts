import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { startS3Server } from './helpers/s3-server';
import { makeNode, pair, startPeerDaemon, waitFor } from './helpers/peer';

interface Replica {
  location: string;
  path: string;
  node: string;
  online: boolean;
  lastSeen: string | null;
  lastVerified: string | null;
}
interface Whereis {
  path: string;
  hash: string | null;
  size: number;
  replicas: Replica[];
}
interface Copies {
  min: number;
  scope: string;
  files: number;
  histogram: Record<'1' | '2' | '3+', number>;
  under: { files: number; bytes: number };
  groups: { locations: { name: string; online: boolean; lastSeen: string | null }[]; files: number; bytes: number; paths: string[] }[];
}

t.test('whereis and copies across two local locations and S3, with one location offline; xattr agrees with whereis', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  mkdirSync(join(a, 'sub'), { recursive: true });
  mkdirSync(b);
  const everywhere = randomBytes(70_000);
  const twice = randomBytes(1000);
  const onlyA = randomBytes(5000);
  writeFileSync(join(a, 'everywhere.bin'), everywhere);
  writeFileSync(join(b, 'everywhere-copy.bin'), everywhere);
  await s3.put('p/every.bin', everywhere);
  writeFileSync(join(a, 'sub', 'twice.bin'), twice);
  await s3.put('p/twice.bin', twice);
  writeFileSync(join(a, 'sub', 'only-a.bin'), onlyA);
  writeFileSync(join(b, 'only-b.txt'), 'only on b\n');
  writeFileSync(join(b, 'empty'), '');
  vdfsOk(home, ['init', '--name', 'n1']);
  vdfsOk(home, ['location', 'add', 'a', a]);
  vdfsOk(home, ['location', 'add', 'b', b]);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/p')]);
  vdfsOk(home, ['scan']);
  vdfsOk(home, ['scan', 'cloud', '--hash']);

  const w = vdfsOk(home, ['whereis', '/a/everywhere.bin', '--json']).json<Whereis>();
  t.equal(w.hash, b3sum(join(a, 'everywhere.bin')), 'whereis names the content by its b3sum');
  t.same(w.replicas.map((r) => r.path).sort(), ['/a/everywhere.bin', '/b/everywhere-copy.bin', '/cloud/every.bin'], 'every replica, with its path there');
  t.ok(
    w.replicas.every((r) => r.online && r.lastSeen !== null && r.node === 'n1'),
    'all online, seen now, on this node',
  );

  // copies.min 2: only-a and only-b are under; empty files do not count.
  vdfsOk(home, ['config', 'set', 'copies.min', '2']);
  let c = vdfsOk(home, ['copies', '--json']).json<Copies>();
  t.equal(c.min, 2);
  t.equal(c.files, 7, 'seven non-empty files (the empty one does not count)');
  t.same(c.histogram, { '1': 2, '2': 2, '3+': 3 });
  t.same(c.under, { files: 2, bytes: onlyA.length + 'only on b\n'.length });
  t.same(c.groups.map((g) => [g.locations.map((l) => l.name).join('+'), g.files, g.paths]).sort(), [
    ['a', 1, ['/a/sub/only-a.bin']],
    ['b', 1, ['/b/only-b.txt']],
  ]);

  vdfsOk(home, ['config', 'set', 'copies.min', '3']);
  c = vdfsOk(home, ['copies', '/a/sub', '--json']).json<Copies>();
  t.equal(c.scope, '/a/sub');
  t.same(
    c.groups.map((g) => [g.locations.map((l) => l.name).join('+'), g.paths]).sort(),
    [
      ['a+cloud', ['/a/sub/twice.bin']],
      ['a', ['/a/sub/only-a.bin']],
    ],
    'scoped, grouped by the set of locations',
  );

  const status = vdfsOk(home, ['status']).stdout;
  t.match(status, /copies: 4 of 7 files .* have fewer than 3 copies/, 'status carries the one-line summary');
  t.match(vdfsOk(home, ['status', '--json']).json<{ copies: Copies }>().copies.histogram, { '1': 2, '2': 2, '3+': 3 });

  // Unplug b: the daemon notices, whereis and copies show it offline with when it was last seen.
  const mnt = join(dir, 'mnt');
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const before = Date.now();
  renameSync(b, `${b}-unplugged`);
  const deadline = Date.now() + 20_000;
  let off: Whereis | undefined;
  while (Date.now() < deadline) {
    off = vdfsOk(home, ['whereis', '/a/everywhere.bin', '--json']).json<Whereis>();
    if (off.replicas.some((r) => r.location === 'b' && !r.online)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const rb = off!.replicas.find((r) => r.location === 'b')!;
  t.equal(rb.online, false, 'b is shown offline');
  t.ok(rb.lastSeen && Date.parse(rb.lastSeen) >= before - 1000, `b was last seen when it went away (${rb.lastSeen})`);
  c = vdfsOk(home, ['copies', '--json']).json<Copies>();
  const onlyB = c.groups.find((g) => g.locations.length === 1 && g.locations[0].name === 'b')!;
  t.equal(onlyB.locations[0].online, false, 'the copies report shows the offline location');
  t.equal(onlyB.locations[0].lastSeen, rb.lastSeen, 'with its last-seen time');

  // The xattr is the same listing.
  const x = sh('getfattr', ['--only-values', '-n', 'user.vdfs.replicas', join(mnt, 'a', 'everywhere.bin')]);
  t.equal(x.code, 0, x.stderr);
  const fromXattr = JSON.parse(x.stdout) as Replica[];
  const strip = (rs: Replica[]) => rs.map(({ lastSeen, ...r }) => ({ ...r, seen: r.online ? 'now' : lastSeen }));
  t.same(strip(fromXattr), strip(vdfsOk(home, ['whereis', '/a/everywhere.bin', '--json']).json<Whereis>().replicas), 'user.vdfs.replicas = whereis');

  t.equal(vdfs(home, ['whereis', '/a/sub', '--json']).code, 3, 'a folder is refused with a clear error');
  t.equal(vdfs(home, ['whereis', '/a/nope', '--json']).code, 3, 'a missing path is ENOENT');
  t.equal(vdfs(home, ['config', 'set', 'copies.min', '0']).code, 2, 'copies.min must be >= 1');
});

t.test("whereis and copies count a paired peer's location, and show it offline with its last-seen time when it goes away", async (t) => {
  const dir = tempDir(t);
  const shared = randomBytes(40_000);
  const a = makeNode(dir, 'alpha', { 'shared.bin': shared, 'alpha-only.bin': randomBytes(3000) });
  const b = makeNode(dir, 'beta', { 'sub/shared-here.bin': shared, 'beta-only.bin': randomBytes(2000) });
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const w = vdfsOk(b.home, ['whereis', '/docs/sub/shared-here.bin', '--json']).json<Whereis>();
  t.same(
    w.replicas.map((r) => [r.path, r.node, r.online]),
    [
      ['/docs/sub/shared-here.bin', 'beta', true],
      ['/adocs/shared.bin', 'alpha', true],
    ],
    "the peer's replica, on node alpha, local disk first",
  );
  vdfsOk(b.home, ['config', 'set', 'copies.min', '2']);
  let c = vdfsOk(b.home, ['copies', '--json']).json<Copies>();
  t.same(c.histogram, { '1': 2, '2': 2, '3+': 0 });
  t.same(c.groups.map((g) => [g.locations.map((l) => l.name).join('+'), g.paths]).sort(), [
    ['adocs', ['/adocs/alpha-only.bin']],
    ['docs', ['/docs/beta-only.bin']],
  ]);

  // B's daemon follows A; A goes away.
  const db = await startPeerDaemon(b.home);
  t.teardown(() => db.stop());
  await da.stop();
  const offAt = await waitFor(
    () =>
      vdfsOk(b.home, ['location', 'ls', '--json'])
        .json<{ name: string; online: boolean }[]>()
        .find((l) => l.name === 'adocs')?.online === false,
    20_000,
    200,
  );
  t.ok(offAt >= 0, 'the peer location is marked offline');
  const w2 = vdfsOk(b.home, ['whereis', '/docs/sub/shared-here.bin', '--json']).json<Whereis>();
  const ra = w2.replicas.find((r) => r.location === 'adocs')!;
  t.equal(ra.online, false, 'whereis shows the peer replica offline');
  t.ok(ra.lastSeen && Date.now() - Date.parse(ra.lastSeen) < 60_000, `with when it was last seen (${ra.lastSeen})`);
  c = vdfsOk(b.home, ['copies', '--json']).json<Copies>();
  const g = c.groups.find((x) => x.locations[0].name === 'adocs')!;
  t.same([g.locations[0].online, g.locations[0].lastSeen], [false, ra.lastSeen], 'copies shows the peer offline, last seen then');
});
