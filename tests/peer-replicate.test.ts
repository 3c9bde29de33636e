import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon, waitFor } from './helpers/peer';
import { authHeaderFor } from './helpers/webdav';

/** GET with the login the mount helper registered for this WebDAV port. */
function httpGet(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { Authorization: authHeaderFor(Number(new URL(url).port)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

t.test("a location of node A appears on node B, reads back identical through B's mount and WebDAV, and follows A live", async (t) => {
  const dir = tempDir(t);
  const files: Record<string, Buffer> = {
    'small.txt': Buffer.from('hello\n'),
    empty: Buffer.alloc(0),
    'a/b/three-blocks.bin': randomBytes(3 * 1024 * 1024 + 17),
    'a/ünïcode 名前.txt': Buffer.from('unicode'),
  };
  const a = makeNode(dir, 'alpha', { ...files, 'unread.bin': randomBytes(100_000) });
  symlinkSync('small.txt', join(a.src, 'link'));
  vdfsOk(a.home, ['scan']);
  const b = makeNode(dir, 'beta');
  let da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  pair(a.home, b.home, ['docs']);
  const added = vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs', '--json']).json<{ kind: string; readonly: boolean; entries: number }>();
  t.same([added.kind, added.readonly, added.entries], ['peer', true, 9], 'backfilled: root, 4 files, empty, link, 2 dirs');
  t.same(
    vdfsOk(b.home, ['ls', '/adocs'])
      .stdout.split('\n')
      .filter(Boolean)
      .map((l) => l.split(/\s+/).pop())
      .sort(),
    ['a/', 'empty', 'link', 'small.txt', 'unread.bin'],
    'browsable without any daemon on B',
  );

  const mnt = join(dir, 'mnt');
  const mb = await startMount(b.home, mnt, ['--peer', '127.0.0.1:0', '--webdav', '127.0.0.1:0']);
  t.teardown(() => mb.stop());
  t.match(mb.output(), /vdfs serving peers at https:\/\/127\.0\.0\.1:\d+/, 'mount --peer serves peers too');
  for (const p of Object.keys(files)) {
    t.equal(sh('b3sum', ['--no-names', join(mnt, 'adocs', p)]).stdout.trim(), b3sum(join(a.src, p)), `b3sum of ${p} through B's mount`);
  }
  t.equal(sh('readlink', [join(mnt, 'adocs', 'link')]).stdout.trim(), 'small.txt', 'symlink replicated');
  const davUrl = /vdfs serving WebDAV at (\S+)/.exec(mb.output())![1].replace(/\/$/, '');
  const dav = await httpGet(`${davUrl}/adocs/a/b/three-blocks.bin`);
  t.equal(dav.status, 200);
  t.ok(dav.body.equals(files['a/b/three-blocks.bin']), 'the same bytes over WebDAV');
  const ro = sh('sh', ['-c', `echo x > '${join(mnt, 'adocs', 'new.txt')}'`]);
  t.equal(ro.code, 2, 'a peer location is read-only: the shell cannot create the file');
  t.match(ro.stderr, /Read-only file system/, 'EROFS, not any failure');

  // Live: a file written on A shows in B's mount within seconds.
  const fresh = randomBytes(200_000);
  writeFileSync(join(a.src, 'fresh.bin'), fresh);
  const visibleMs = await waitFor(
    () => existsSync(join(mnt, 'adocs', 'fresh.bin')) && sh('b3sum', ['--no-names', join(mnt, 'adocs', 'fresh.bin')]).stdout.trim() === b3sum(join(a.src, 'fresh.bin')),
    10_000,
    50,
  );
  t.ok(visibleMs >= 0 && visibleMs <= 3000, `a file added on A is readable in B's mount after ${visibleMs} ms (≤ 3 s)`);
  sh('mv', [join(a.src, 'small.txt'), join(a.src, 'a', 'moved.txt')]);
  t.ok((await waitFor(() => existsSync(join(mnt, 'adocs', 'a', 'moved.txt')) && !existsSync(join(mnt, 'adocs', 'small.txt')), 10_000)) >= 0, 'a rename on A follows');

  // A goes away: the tree stays browsable, reads of content never fetched fail promptly.
  await da.stop();
  t.same(readdirSync(join(mnt, 'adocs')).sort(), ['a', 'empty', 'fresh.bin', 'link', 'unread.bin'], 'browsable while A is offline');
  t.ok((await waitFor(() => vdfsOk(b.home, ['location', 'ls', '--json']).json<{ online: boolean }[]>()[0].online === false, 15_000, 300)) >= 0, 'marked offline');
  const t0 = Date.now();
  const r = sh('cat', [join(mnt, 'adocs', 'unread.bin')], { timeoutMs: 20_000 });
  t.not(r.code, 0, 'content never read and not on any reachable replica: an error');
  t.ok(Date.now() - t0 < 8000, `and promptly (${Date.now() - t0} ms)`);
  t.equal(
    sh('b3sum', ['--no-names', join(mnt, 'adocs', 'a', 'b', 'three-blocks.bin')]).stdout.trim(),
    b3sum(join(a.src, 'a/b/three-blocks.bin')),
    "content read before is still served from B's block cache",
  );

  // Resumable: changes made while B's daemon is down arrive after a restart, from remote_seq (no snapshot).
  await mb.stop();
  writeFileSync(join(a.src, 'later.txt'), 'later\n');
  vdfsOk(a.home, ['scan']);
  da = await startPeerDaemon(a.home, { port: Number(new URL(da.url).port) });
  const mb2 = await startMount(b.home, mnt);
  t.teardown(() => mb2.stop());
  t.ok((await waitFor(() => existsSync(join(mnt, 'adocs', 'later.txt')), 10_000)) >= 0, 'a change made while B was down arrives after restart');
  t.equal(readFileSync(join(mnt, 'adocs', 'later.txt'), 'utf8'), 'later\n');
  t.notMatch(mb2.output(), /snapshot applied/, 'resumed from remote_seq, not from a new snapshot');
  t.equal(vdfs(b.home, ['location', 'ls', '--json']).json<{ online: boolean }[]>()[0].online, true, 'online again');
});
