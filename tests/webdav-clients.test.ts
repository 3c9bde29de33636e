import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { b3sumMany, tempDir } from './helpers/cli';
import { dav, metric, startWebdavServer } from './helpers/webdav';

/** relative path -> b3sum of every file under `root` (directories as 'dir'). */
function treeHashes(root: string): Map<string, string> {
  const files: string[] = [];
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        out.set(relative(root, p), 'dir');
        walk(p);
      } else files.push(p);
    }
  };
  walk(root);
  for (const [file, hash] of b3sumMany(files)) out.set(relative(root, file), hash);
  return out;
}

function makeTree(root: string): void {
  mkdirSync(join(root, 'sub', 'deep'), { recursive: true });
  writeFileSync(join(root, 'big.bin'), randomBytes(5 * 1024 * 1024 + 17));
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'sub', 'with space.txt'), 'space\n');
  writeFileSync(join(root, 'sub', 'deep', 'ünï#%&;.txt'), 'odd name\n');
  writeFileSync(join(root, 'sub', 'deep', 'small.bin'), randomBytes(4097));
}

function run(cmd: string, args: string[], opts: { input?: string; cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}): string {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    input: opts.input,
    cwd: opts.cwd,
    env: { ...process.env, RCLONE_CONFIG: '/dev/null', ...opts.env },
  });
  if (r.error) throw new Error(`${cmd} could not run (is it installed?): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

t.test('real clients copy trees in and out intact', async (t) => {
  const srv = await startWebdavServer(t);
  const work = tempDir(t, 'vdfs-webdav-clients-');
  const src = join(work, 'src');
  mkdirSync(src);
  makeTree(src);
  const want = treeHashes(src);

  t.test('rclone webdav backend (Depth 0/1 PROPFIND, PUT, MKCOL)', async (t) => {
    const remote = ':webdav:rclone-in';
    const pass = run('rclone', ['obscure', '--', srv.login.password]).trim();
    const url = [`--webdav-url=${srv.url}loc`, `--webdav-user=${srv.login.user}`, `--webdav-pass=${pass}`];
    run('rclone', ['copy', src, remote, ...url]);
    t.same(treeHashes(join(srv.locDir, 'rclone-in')), want, 'uploaded tree equals the source (b3sum)');
    const back = join(work, 'rclone-out');
    run('rclone', ['copy', remote, back, ...url]);
    t.same(treeHashes(back), want, 'downloaded tree equals the source (b3sum)');
    const check = run('rclone', ['check', src, remote, ...url, '--size-only']);
    t.match(check, /0 differences found/);
  });

  t.test('cadaver (neon): mkcol, put, lock, get, propset, move, copy', async (t) => {
    const out = join(work, 'cadaver-out');
    mkdirSync(out);
    const script = [
      'mkcol cad',
      'cd cad',
      `put ${join(src, 'big.bin')} big.bin`,
      `put ${join(src, 'sub', 'deep', 'small.bin')} small.bin`,
      'lock big.bin',
      'unlock big.bin',
      'propset small.bin colour blue',
      'propget small.bin colour',
      'copy big.bin big2.bin',
      'move small.bin small2.bin',
      'get big2.bin big.bin',
      'get small2.bin small.bin',
      'quit',
      '',
    ].join('\n');
    // cadaver takes the login from ~/.netrc
    const netrcHome = join(work, 'cadaver-home');
    mkdirSync(netrcHome);
    writeFileSync(join(netrcHome, '.netrc'), `machine 127.0.0.1 login ${srv.login.user} password ${srv.login.password}\n`, { mode: 0o600 });
    const log = run('cadaver', [`${srv.url}loc/`], { input: script, cwd: out, env: { HOME: netrcHome } });
    t.notMatch(log, /failed/i, 'no cadaver command failed');
    t.match(log, /Value of colour is: blue/);
    const got = treeHashes(out);
    t.equal(got.get('big.bin'), want.get('big.bin'), 'big file round trip');
    t.equal(got.get('small.bin'), want.get('sub/deep/small.bin'), 'small file round trip');
  });

  t.test('davfs2 (kernel mount): cp -r in, umount uploads, remount, cp -r out', async (t) => {
    // davfs2 needs root (or an fstab entry) and /dev/fuse; without them this test fails, it never skips
    const mnt = join(work, 'davfs-mnt');
    const conf = join(work, 'davfs-conf');
    mkdirSync(mnt);
    mkdirSync(join(conf, 'cache'), { recursive: true });
    // mount.davfs drops privileges to the davfs2 user for its cache (mkdtemp makes 0700 dirs)
    chmodSync(work, 0o755);
    chmodSync(conf, 0o777);
    chmodSync(join(conf, 'cache'), 0o777);
    // buf_size 64: with the default 16 KiB every directory read fails with EINVAL on Linux >= 6.16
    writeFileSync(join(conf, 'davfs2.conf'), `buf_size 64\nuse_locks 1\ncache_dir ${join(conf, 'cache')}\n`);
    const mounted = () =>
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .some((l) => l.split(' ')[4] === mnt);
    const mount = () =>
      run('mount.davfs', ['-o', `conf=${join(conf, 'davfs2.conf')}`, `${srv.url}loc/`, mnt], { input: `${srv.login.user}\n${srv.login.password}\n`, timeoutMs: 30_000 });
    const umount = () => {
      if (mounted()) run('umount', [mnt], { timeoutMs: 120_000 });
    };
    t.teardown(() => {
      if (mounted()) spawnSync('umount', ['-l', mnt], { timeout: 30_000 });
    });
    mount();
    t.ok(mounted(), 'mounted');
    run('cp', ['-r', src, join(mnt, 'davfs-in')]);
    umount(); // davfs2 uploads on close and finishes before umount returns
    t.same(treeHashes(join(srv.locDir, 'davfs-in')), want, 'uploaded tree equals the source (b3sum)');
    mount();
    const back = join(work, 'davfs-out');
    run('cp', ['-r', join(mnt, 'davfs-in'), back]);
    umount();
    t.same(treeHashes(back), want, 'downloaded tree equals the source (b3sum)');
  });

  t.test('afterwards: no handles held, server healthy', async (t) => {
    t.equal(await metric(srv.port, 'vdfs_webdav_open_handles'), 0);
    t.equal((await dav(srv.port, 'GET', '/~vdfs/health')).status, 200);
  });
});
