import t from 'tap';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon, waitFor } from './helpers/peer';

t.test('a peer serving wrong bytes (file changed on A without a rescan, same size and mtime) is caught by verification', async (t) => {
  const dir = tempDir(t);
  const original = randomBytes(2 * 1024 * 1024 + 5);
  const a = makeNode(dir, 'alpha', { 'f.bin': original, 'ok.txt': 'fine\n' });
  const b = makeNode(dir, 'beta');
  let da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);

  // Change the content behind A's back, keeping inode, size and mtime (ns) — its index still has the old hash.
  await da.stop();
  const f = join(a.src, 'f.bin');
  copyFileSync(f, join(dir, 'ref'));
  sh('cp', ['-p', f, join(dir, 'ref')]);
  const fd = openSync(f, 'r+');
  const evil = randomBytes(original.length);
  writeFileSync(fd, evil);
  closeSync(fd);
  t.equal(sh('touch', ['-m', '-r', join(dir, 'ref'), f]).code, 0);
  da = await startPeerDaemon(a.home, { port: Number(new URL(da.url).port) });
  t.equal(vdfsOk(a.home, ['stat', '/docs/f.bin', '--json']).json<{ hash: string }>().hash, b3sum(join(dir, 'ref')), 'A still indexes the old hash');

  const r = vdfs(b.home, ['cat', '/adocs/f.bin']);
  t.equal(r.code, 1, 'the read fails with EIO');
  t.match(r.stderr, /failed verification/, 'because the bytes did not verify');
  t.equal(r.stdout.length, 0, 'not one unverified byte is returned');
  t.equal(vdfsOk(b.home, ['cat', '/adocs/ok.txt']).stdout, 'fine\n', 'other content of the same peer still reads');
});

t.test('three nodes: killing A mid-read completes the read from C', async (t) => {
  const dir = tempDir(t);
  const big = randomBytes(24 * 1024 * 1024 + 3);
  const a = makeNode(dir, 'alpha', { 'big.bin': big });
  const c = makeNode(dir, 'gamma', { 'copy/big.bin': big });
  const b = makeNode(dir, 'beta');
  const da = await startPeerDaemon(a.home, { logLevel: 'debug' });
  t.teardown(() => da.stop());
  const dc = await startPeerDaemon(c.home, { logLevel: 'debug' });
  t.teardown(() => dc.stop());
  pair(a.home, b.home, ['docs']);
  pair(c.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  vdfsOk(b.home, ['location', 'add', 'cdocs', 'peer://gamma/docs']);
  const st = vdfsOk(b.home, ['stat', '/adocs/big.bin', '--json']).json<{ replicas: { path: string; node: string }[] }>();
  t.same(
    st.replicas.map((x) => [x.path, x.node]),
    [
      ['/adocs/big.bin', 'alpha'],
      ['/cdocs/copy/big.bin', 'gamma'],
    ],
    'vdfs stat lists replicas across nodes',
  );

  const mnt = join(dir, 'mnt');
  const mb = await startMount(b.home, mnt);
  t.teardown(() => mb.stop());
  const fd = openSync(join(mnt, 'adocs', 'big.bin'), 'r');
  const got = Buffer.alloc(big.length);
  let pos = readSync(fd, got, 0, 1 << 20, 0);
  t.equal(pos, 1 << 20, 'the first MiB came (from A, the first replica)');
  t.notMatch(dc.output(), /blob served/, 'C has served nothing yet');
  // A has logged serving the first block before it dies (a condition, not a guess with a sleep).
  t.ok((await waitFor(() => /blob served/.test(da.output()), 10_000, 20)) >= 0, 'A logged serving a block');
  t.comment(`A served ${da.output().split('blob served').length - 1} blocks before it died`);
  await da.kill9();
  try {
    while (pos < big.length) {
      const n = readSync(fd, got, pos, Math.min(1 << 20, big.length - pos), pos);
      if (n === 0) break;
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  t.equal(pos, big.length, 'the read completed without an error after A died');
  t.ok(got.equals(big), 'with the right bytes');
  t.ok((await waitFor(() => /blob served/.test(dc.output()), 5000)) >= 0, 'the rest came from C (its log says so)');
  writeFileSync(join(dir, 'got'), got);
  t.equal(b3sum(join(dir, 'got')), b3sum(join(c.src, 'copy', 'big.bin')), 'b3sum agrees');
});
