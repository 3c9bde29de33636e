import t from 'tap';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isOurs } from '../mount/fuse/mountpoint';
import { ROOT, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { isMounted, startMount } from './helpers/mount';

// Issue 12 item 13: the mount point (by default /tmp/vdfs-$UID/mnt) may be created first by
// another user; and stale-mount recovery (fusermount -uz after kill -9) must only ever detach a
// vdfs mount of ours.

const NOBODY = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());

function home(t: Parameters<typeof tempDir>[0]): { dir: string; home: string } {
  const dir = tempDir(t);
  chmodSync(dir, 0o755); // so that "another user" could have made things in it
  const h = join(dir, 'home');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'a.txt'), 'a');
  vdfsOk(h, ['init', '--name', 'mp']);
  vdfsOk(h, ['location', 'add', 'src', join(dir, 'src')]);
  vdfsOk(h, ['scan']);
  return { dir, home: h };
}

t.test('a mount point made by another user, writable by others or a symlink is refused', async (t) => {
  const { dir, home: h } = home(t);
  const foreign = join(dir, 'foreign-mnt');
  mkdirSync(foreign);
  chownSync(foreign, NOBODY, NOBODY);
  let r = vdfs(h, ['mount', foreign], { timeoutMs: 30_000 });
  t.not(r.code, 0, "another user's directory: refused");
  t.match(r.stderr, /mount point .*foreign-mnt is owned by uid \d+, not by you/, 'with a clear error');
  t.notOk(isMounted(foreign), 'nothing mounted there');

  const open = join(dir, 'open-mnt');
  mkdirSync(open);
  chmodSync(open, 0o777);
  r = vdfs(h, ['mount', open], { timeoutMs: 30_000 });
  t.not(r.code, 0, 'a directory writable by others: refused');
  t.match(r.stderr, /writable by others/);
  t.notOk(isMounted(open));

  const mine = join(dir, 'mine');
  mkdirSync(mine);
  const link = join(dir, 'link-mnt');
  symlinkSync(mine, link);
  r = vdfs(h, ['mount', link], { timeoutMs: 30_000 });
  t.not(r.code, 0, 'a symlink: refused');
  t.match(r.stderr, /is a symlink/);
  t.notOk(isMounted(mine));

  const fresh = join(dir, 'fresh', 'mnt');
  const m = await startMount(h, fresh);
  t.teardown(() => m.stop());
  t.ok(isMounted(fresh), 'a mount point of our own (created by vdfs) still mounts');
});

t.test('vdfs up: a default mount point parent in /tmp pre-created by another user is refused', async (t) => {
  const { dir, home: h } = home(t);
  chmodSync(dir, 0o1777); // a /tmp: anyone may create names in it
  const oldTmp = process.env.TMPDIR;
  const oldXdg = process.env.XDG_RUNTIME_DIR;
  process.env.TMPDIR = dir; // the child's os.tmpdir()
  delete process.env.XDG_RUNTIME_DIR;
  t.teardown(() => {
    if (oldTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = oldTmp;
    if (oldXdg !== undefined) process.env.XDG_RUNTIME_DIR = oldXdg;
  });
  const uid = process.getuid!();
  const parent = join(dir, `vdfs-${uid}`);
  // The other user gets there first, as they can in /tmp.
  const made = spawnSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'mkdir', '-m', '0777', parent], { encoding: 'utf8' });
  t.equal(made.status, 0, `mkdir as nobody: ${made.stderr}`);
  const r = vdfs(h, ['up', join(dir, 'src'), '--webdav', '127.0.0.1:0'], { timeoutMs: 30_000 });
  t.not(r.code, 0, 'refused');
  t.match(r.stderr, new RegExp(`mount point parent .*vdfs-${uid} is owned by uid ${NOBODY}, not by you`), 'with a clear error');
  t.same(readdirSync(parent), [], 'nothing made inside it');
  t.notOk(isMounted(join(parent, 'mnt')));
});

/** A FUSE mount that is not a vdfs mount (another program's), in a child process. */
async function foreignFuse(t: { teardown(fn: () => unknown): void }, mnt: string) {
  const script = `
    const Fuse = require(${JSON.stringify(join(ROOT, 'node_modules', 'fuse-native'))});
    class F extends Fuse { _fuseOptions() { const b = super._fuseOptions(); return (b ? b + ',' : '-o') + 'fsname=other,subtype=other'; } }
    const dir = () => ({ mtime: new Date(), atime: new Date(), ctime: new Date(), size: 0, mode: 0o40755, uid: 0, gid: 0, nlink: 2 });
    const f = new F(process.argv[1], { readdir: (p, cb) => cb(0, ['theirs']), getattr: (p, cb) => (p === '/' || p === '/theirs' ? cb(0, dir()) : cb(Fuse.ENOENT)) }, {});
    f.mount((err) => { if (err) { console.error(err.message); process.exit(1); } console.log('foreign mounted'); });
    process.on('SIGTERM', () => f.unmount(() => process.exit(0)));`;
  const proc = spawn(process.execPath, ['-e', script, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(() => {
    proc.kill('SIGKILL');
    if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt], { timeout: 10_000 });
  });
  for (const t0 = Date.now(); !out.includes('foreign mounted');) {
    if (proc.exitCode !== null || Date.now() - t0 > 15_000) throw new Error(`foreign FUSE mount did not come up: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return proc;
}

t.test('stale-mount recovery never touches a mount that is not ours', async (t) => {
  const { dir, home: h } = home(t);

  // A live FUSE mount of another program.
  const live = join(dir, 'live');
  mkdirSync(live);
  await foreignFuse(t, live);
  let r = vdfs(h, ['mount', live], { timeoutMs: 30_000 });
  t.not(r.code, 0, 'refused over a live foreign FUSE mount');
  t.match(r.stderr, /not a vdfs mount of yours \(fuse\.other from other\); leaving it alone/);
  t.ok(isMounted(live), 'the foreign mount is still there');
  t.same(readdirSync(live), ['theirs'], 'and still serves its owner');

  // A dead one (its process was killed): what `fusermount -uz` recovery used to detach.
  const dead = join(dir, 'dead');
  mkdirSync(dead);
  const p = await foreignFuse(t, dead);
  p.kill('SIGKILL');
  await new Promise((res) => p.once('exit', res));
  r = vdfs(h, ['mount', dead], { timeoutMs: 30_000 });
  t.not(r.code, 0, 'refused over a dead foreign FUSE mount');
  t.ok(isMounted(dead), 'the dead foreign mount is left for its owner');

  // A tmpfs.
  const tmpfs = join(dir, 'tmpfs');
  mkdirSync(tmpfs);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tmpfs], { encoding: 'utf8' });
  t.equal(mounted.status, 0, `mount tmpfs: ${mounted.stderr}`);
  t.teardown(() => {
    spawnSync('umount', ['-l', tmpfs]);
  });
  writeFileSync(join(tmpfs, 'keep'), 'x');
  r = vdfs(h, ['mount', tmpfs], { timeoutMs: 30_000 });
  t.not(r.code, 0, 'refused over a tmpfs');
  t.ok(isMounted(tmpfs) && existsSync(join(tmpfs, 'keep')), 'the tmpfs is untouched');

  // Our own stale mount (kill -9) is still recovered.
  const ours = join(dir, 'ours');
  const m1 = await startMount(h, ours);
  t.teardown(() => m1.stop());
  await m1.kill9();
  t.ok(isMounted(ours), 'kill -9 left a dead mount');
  const m2 = await startMount(h, ours);
  t.teardown(() => m2.stop());
  t.same(readdirSync(join(ours, 'src')), ['a.txt'], 'a new daemon recovered our own stale mount');
});

t.test('what counts as ours: fuse.vdfs from vdfs with our user_id', async (t) => {
  const uid = process.getuid!();
  const m = (fstype: string, source: string, opts: string) => ({ mountpoint: '/x', fstype, source, superOptions: opts });
  t.ok(isOurs(m('fuse.vdfs', 'vdfs', `rw,user_id=${uid},group_id=0`)));
  t.notOk(isOurs(m('fuse.vdfs', 'vdfs', `rw,user_id=${uid + 1},group_id=0`)), "another user's vdfs");
  t.notOk(isOurs(m('fuse.vdfs', 'vdfs', `rw,user_id=1${uid},group_id=0`)), 'a user_id that only starts like ours');
  t.notOk(isOurs(m('fuse.sshfs', 'vdfs', `rw,user_id=${uid}`)));
  t.notOk(isOurs(m('tmpfs', 'tmpfs', 'rw')));
});
