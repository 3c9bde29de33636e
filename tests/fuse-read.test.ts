import t from 'tap';
import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { isMounted, sh, startMount } from './helpers/mount';

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  vdfsOk(home, ['init', '--name', 'fuse-test']);
  return { dir, home, mnt };
}

t.test('a mounted tree reads back identical under b3sum, with xattrs, symlinks and by-hash', async (t) => {
  const { dir, home, mnt } = setup(t);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'a', 'b'), { recursive: true });
  const files: Record<string, Buffer> = {
    'small.txt': Buffer.from('hello\n'),
    empty: Buffer.alloc(0),
    'a/b/three-blocks.bin': randomBytes(3 * 1024 * 1024 + 17),
    'a/ünïcode 名前.txt': Buffer.from('unicode'),
  };
  for (const [p, data] of Object.entries(files)) writeFileSync(join(src, p), data);
  symlinkSync('small.txt', join(src, 'link'));
  vdfsOk(home, ['location', 'add', 'src', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());

  t.same(sh('ls', [mnt]).stdout.split('\n').filter(Boolean).sort(), ['src'], 'the root lists the location (.vdfs is hidden from ls)');
  for (const p of Object.keys(files)) {
    const r = sh('b3sum', ['--no-names', join(mnt, 'src', p)]);
    t.equal(r.stdout.trim(), b3sum(join(src, p)), `b3sum of ${p} through the mount`);
  }
  const x = sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', join(mnt, 'src', 'small.txt')]);
  t.equal(x.stdout, b3sum(join(src, 'small.txt')), 'user.vdfs.hash');
  const replicas = JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.replicas', join(mnt, 'src', 'small.txt')]).stdout) as { path: string }[];
  t.same(
    replicas.map((r) => r.path),
    ['/src/small.txt'],
  );
  t.equal(sh('readlink', [join(mnt, 'src', 'link')]).stdout.trim(), 'small.txt');
  t.equal(sh('cat', [join(mnt, 'src', 'link')]).stdout, 'hello\n', 'symlink followed by the kernel');
  const h = b3sum(join(src, 'a/b/three-blocks.bin'));
  t.equal(sh('b3sum', ['--no-names', join(mnt, '.vdfs', 'by-hash', h)]).stdout.trim(), h, 'by-hash opens content');
  // Bytes, not text: 20 bytes across the first block boundary, compared with what was written.
  const partial = spawnSync('dd', [`if=${join(mnt, 'src/a/b/three-blocks.bin')}`, 'bs=1', 'skip=1048570', 'count=20', 'status=none'], { timeout: 20_000 });
  t.equal(partial.status, 0, 'dd exits 0');
  t.same(partial.stdout, files['a/b/three-blocks.bin'].subarray(1048570, 1048590), 'dd read the 20 bytes across the block boundary');
  const st = sh('stat', ['-c', '%s %F', join(mnt, 'src/a/b/three-blocks.bin')]);
  t.equal(st.stdout.trim(), `${3 * 1024 * 1024 + 17} regular file`);
  t.equal(sh('cat', [join(mnt, 'src', 'nope')]).code, 1, 'a missing file is ENOENT');

  // The kernel's read-ahead for the mount is raised to the 1 MiB READ the daemon accepts (a
  // FUSE mount starts at 128 KiB): a sequential reader costs one READ per MiB, not eight.
  const dev = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === mnt)
    ?.split(' ')[2];
  t.ok(dev, `the mount's device (${dev})`);
  t.equal(readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim(), '1024', 'read-ahead of the mount: 1024 KiB');

  const code = await m.stop();
  t.equal(code, 0, 'SIGTERM exits cleanly');
  t.notOk(isMounted(mnt), 'SIGTERM leaves no mount');
});

t.test('a daemon killed with -9 is followed by a mount that works', async (t) => {
  const { dir, home, mnt } = setup(t);
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'f.txt'), 'survives');
  vdfsOk(home, ['location', 'add', 'src', src]);
  vdfsOk(home, ['scan']);
  const m1 = await startMount(home, mnt);
  t.teardown(() => m1.stop());
  t.equal(sh('cat', [join(mnt, 'src', 'f.txt')]).stdout, 'survives');
  await m1.kill9();
  t.ok(isMounted(mnt), 'the dead mount is still there after kill -9');
  const dead = sh('ls', [mnt], { timeoutMs: 10_000 });
  t.equal(dead.code, 2, 'and it is dead: ls fails at once (a hang is killed and fails here)');
  // ENOTCONN; with FUSE over io_uring, a request that races the kernel's asynchronous teardown of
  // the dead daemon's rings (they hold /dev/fuse open until it ends) is ended ECONNABORTED instead.
  t.match(dead.stderr, /Transport endpoint is not connected|Software caused connection abort/, 'with ENOTCONN (or ECONNABORTED)');
  const m2 = await startMount(home, mnt);
  t.teardown(() => m2.stop());
  t.equal(sh('cat', [join(mnt, 'src', 'f.txt')]).stdout, 'survives', 'the next mount recovered it');
});

t.test('offline location: reads come from another replica; with none, EHOSTDOWN fast', async (t) => {
  const { dir, home, mnt } = setup(t);
  const a = join(dir, 'drive-a');
  const b = join(dir, 'drive-b');
  mkdirSync(a);
  mkdirSync(b);
  const shared = randomBytes(2 * 1024 * 1024 + 5);
  writeFileSync(join(a, 'shared.bin'), shared);
  writeFileSync(join(b, 'copy.bin'), shared);
  writeFileSync(join(a, 'only-here.txt'), 'not anywhere else');
  vdfsOk(home, ['location', 'add', 'a', a]);
  vdfsOk(home, ['location', 'add', 'b', b]);
  vdfsOk(home, ['scan']);
  renameSync(a, `${a}.unplugged`); // the drive is gone
  t.teardown(() => renameSync(`${a}.unplugged`, a));
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  t.same(
    sh('ls', [join(mnt, 'a')])
      .stdout.split('\n')
      .filter(Boolean)
      .sort(),
    ['only-here.txt', 'shared.bin'],
    'the offline tree stays visible',
  );
  t.equal(sh('b3sum', ['--no-names', join(mnt, 'a', 'shared.bin')]).stdout.trim(), b3sum(join(b, 'copy.bin')), 'read from the replica on b');
  const t0 = Date.now();
  const r = sh('cat', [join(mnt, 'a', 'only-here.txt')], { timeoutMs: 20_000 });
  t.equal(r.code, 1, 'no replica: cat exits 1 (a hang, killed by the timeout, is not an exit)');
  t.match(r.stderr, /Host is down/, 'with EHOSTDOWN');
  t.ok(Date.now() - t0 < 10_000, 'promptly, not after a hang');
  t.equal(sh('stat', ['-c', '%s', join(mnt, 'a', 'only-here.txt')]).stdout.trim(), '17', 'never shown as empty: its size, exactly');
});

t.test('changes made directly in a location show in the mount within seconds; an unplugged drive goes offline and back', async (t) => {
  const { dir, home, mnt } = setup(t);
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'old.txt'), 'old');
  vdfsOk(home, ['location', 'add', 'src', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  mkdirSync(join(src, 'new-dir', 'nested'), { recursive: true });
  writeFileSync(join(src, 'new-dir', 'nested', 'file.txt'), 'appeared');
  let got = '';
  for (let i = 0; i < 40 && got !== 'appeared'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    got = vdfs(home, ['cat', '/src/new-dir/nested/file.txt']).stdout;
  }
  t.equal(got, 'appeared', 'a file created outside the mount is indexed');
  let hash: string | null = null;
  for (let i = 0; i < 40 && !hash; i++) {
    await new Promise((r) => setTimeout(r, 100));
    hash = vdfs(home, ['stat', '/src/new-dir/nested/file.txt', '--json']).json<{ hash: string | null }>().hash;
  }
  t.equal(hash, b3sum(join(src, 'new-dir', 'nested', 'file.txt')), 'and hashed');
  renameSync(src, `${src}.gone`);
  let online = true;
  for (let i = 0; i < 60 && online; i++) {
    await new Promise((r) => setTimeout(r, 100));
    online = vdfs(home, ['location', 'ls', '--json']).json<{ online: boolean }[]>()[0].online;
  }
  t.notOk(online, 'the location is marked offline');
  t.match(sh('ls', [join(mnt, 'src')]).stdout, /old\.txt/, 'its tree stays visible');
  renameSync(`${src}.gone`, src);
  for (let i = 0; i < 60 && !online; i++) {
    await new Promise((r) => setTimeout(r, 100));
    online = vdfs(home, ['location', 'ls', '--json']).json<{ online: boolean }[]>()[0].online;
  }
  t.ok(online, 'and online again when it comes back');
});
