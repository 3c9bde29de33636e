import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';
import { dav } from './helpers/webdav';

// One daemon, two front ends: a WebDAV PUT (or DELETE) changes the index, and the kernel's
// caches of the FUSE mount must follow before their 10 s timeouts run out: the attributes,
// the cached pages (a same-size rewrite) and a descriptor held open across the change.
t.test('a WebDAV write reaches the FUSE mount at once: size, bytes, an open descriptor, a delete', async (t) => {
  const { mnt, src, m } = await mountWithOracle(t, 'l', [], ['--webdav', '127.0.0.1:0']);
  const port = Number(/vdfs serving WebDAV at https?:\/\/[^\s/]+:(\d+)\//.exec(m.output())![1]);
  const f = join(mnt, 'l', 'doc.txt');
  t.equal((await dav(port, 'PUT', '/l/doc.txt', { body: 'first\n' })).status, 201, 'created through WebDAV');
  t.ok(await until(() => sh('cat', [f]).stdout === 'first\n', 10_000), 'read through the mount (its attributes and pages cached now)');
  // A reader that keeps its descriptor open across the change (an editor, a viewer).
  const reader = spawn(
    'python3',
    ['-u', '-c', 'import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nfor line in sys.stdin:\n  print(os.fstat(fd).st_size, os.pread(fd,100,0).decode(), flush=True)', f],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  t.teardown(() => reader.kill());
  let out = '';
  reader.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const ask = async () => {
    const before = out.length;
    reader.stdin.write('\n');
    await until(() => out.length > before && out.endsWith('\n'), 5_000);
    return out.slice(before).replace(/\n$/, '');
  };
  t.equal(await ask(), '6 first\n', 'the open descriptor reads the first version');
  const t0 = Date.now();
  t.equal((await dav(port, 'PUT', '/l/doc.txt', { body: 'first\nsecond\n' })).status, 204, 'appended through WebDAV');
  const size = () => sh('stat', ['-c', '%s', f]).stdout.trim();
  t.ok(await until(() => size() === '13' && sh('cat', [f]).stdout === 'first\nsecond\n', 5_000), `stat and cat show the new bytes (${Date.now() - t0} ms; attribute timeout 10 s)`);
  let seen = '';
  for (const end = Date.now() + 5_000; Date.now() < end && seen !== '13 first\nsecond\n';) seen = await ask();
  t.equal(seen, '13 first\nsecond\n', 'and so does the descriptor held open across it');
  t.equal((await dav(port, 'PUT', '/l/doc.txt', { body: 'FIRST\nSECOND\n' })).status, 204, 'rewritten, same size');
  t.ok(await until(() => sh('cat', [f]).stdout === 'FIRST\nSECOND\n', 5_000), 'no stale cached pages');
  t.equal(readFileSync(join(src, 'doc.txt'), 'utf8'), 'FIRST\nSECOND\n', 'the folder holds it');
  t.equal((await dav(port, 'DELETE', '/l/doc.txt')).status, 204, 'deleted through WebDAV');
  t.ok(await until(() => sh('stat', [f]).code !== 0, 5_000), 'the name is gone from the mount before the entry timeout');
});
