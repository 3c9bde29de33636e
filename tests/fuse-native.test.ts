import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadNativeFuse } from '../core/native-addon';
import { b3sum, tempDir, vdfsOk, until } from './helpers/cli';
import { DIRECT_READER, isMounted, mountWithOracle, sh, startMount, type RunningMount, indexedLocation } from './helpers/mount';

/** Polls `cond` every 20 ms up to `ms`; returns whether it came true. */

const exited = (m: RunningMount) => m.proc.exitCode !== null || m.proc.signalCode !== null;

interface FuseStats {
  backend: string;
  nodes: number;
  nativeReads: number;
  nativeWrites: number;
  jsRequests: number;
  leadReads: number;
  ringQueues: number;
  passthrough: number;
  passthroughOpens: number;
}

function fuseStats(mnt: string): FuseStats {
  const r = sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]);
  return JSON.parse(r.stdout) as FuseStats;
}

t.test('the native FUSE addon is built and loads (run .ci/setup)', async (t) => {
  const { addon, error } = loadNativeFuse();
  t.ok(addon, error?.message ?? 'loaded');
  t.type(addon?.start, 'function');
});

t.test('vdfs mount uses the native backend by default', async (t) => {
  const prev = process.env.VDFS_TEST_FUSE_BACKEND;
  process.env.VDFS_TEST_FUSE_BACKEND = 'default';
  t.teardown(() => {
    if (prev === undefined) delete process.env.VDFS_TEST_FUSE_BACKEND;
    else process.env.VDFS_TEST_FUSE_BACKEND = prev;
  });
  const { mnt, m } = await mountWithOracle(t, 'l');
  t.ok(await until(() => m.output().includes('"fuseBackend":"native"'), 5000), 'the daemon says which backend it mounted with');
  t.equal(fuseStats(mnt).backend, 'native');
  t.equal(fuseStats(mnt).passthrough, 0, 'no passthrough unless asked');
});

t.test("the counters read in getxattr's two calls (size, then value) even when they grew in between", async (t) => {
  const { mnt } = await mountWithOracle(t, 'l');
  // 1,000 size queries between the two calls: op.getxattr alone gains three digits.
  const py = `
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
mnt, name = sys.argv[1].encode(), b'user.vdfs.fuse'
n = libc.getxattr(mnt, name, None, 0)
for _ in range(1000):
    libc.getxattr(mnt, name, None, 0)
buf = ctypes.create_string_buffer(n)
got = libc.getxattr(mnt, name, buf, n)
if got < 0:
    sys.exit('getxattr: errno %d' % ctypes.get_errno())
print(json.loads(buf.raw[:got])['op.getxattr'])
`;
  const r = sh('python3', ['-c', py, mnt]);
  t.equal(r.code, 0, `the value read into a buffer of the size first told ${r.stderr}`);
  t.ok(Number(r.stdout) >= 1000, `and it is the grown value (op.getxattr ${r.stdout.trim()})`);
});

t.test('with --passthrough (root, Linux >= 6.9) the kernel reads and writes local files itself; readers and a writer share the file', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  writeFileSync(join(src, 'local.bin'), randomBytes(3 * 1024 * 1024 + 17));
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt, ['--passthrough']);
  t.teardown(() => m.stop());
  const f = join(mnt, 'l', 'local.bin');
  const before = fuseStats(mnt);
  t.equal(before.passthrough, 1, 'passthrough negotiated');
  t.equal(sh('b3sum', ['--no-names', f]).stdout.trim(), b3sum(join(src, 'local.bin')), 'content through the mount');
  const after = fuseStats(mnt);
  t.ok(after.passthroughOpens > before.passthroughOpens, 'the open was handed to the kernel');
  t.equal(after.nativeReads, before.nativeReads, 'no read reached the daemon');
  // Two readers at once share one backing file (the kernel wants one per inode).
  const two = sh('bash', ['-c', `exec 3<"${f}" 4<"${f}"; b3sum --no-names <&3; b3sum --no-names <&4; exec 3<&- 4<&-`]);
  t.equal(two.stdout.trim().split('\n').length, 2, two.stderr);
  t.ok(
    two.stdout
      .trim()
      .split('\n')
      .every((l) => l === b3sum(join(src, 'local.bin'))),
    'both byte-exact',
  );
  // tail -f while a logger appends: the writer joins the readers' backing file, and the kernel
  // writes it itself; the reader's descriptor and stat see every append, the index follows at close.
  const log = join(mnt, 'l', 'app.log');
  const py = `
import os, sys
log = sys.argv[1]
w = os.open(log, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
r = os.open(log, os.O_RDONLY)
seen = b''
for i in range(3):
    os.write(w, b'line %d\\n' % i)
    os.fsync(w)
    seen += os.read(r, 4096)
    print(os.fstat(r).st_size, os.stat(log).st_size)
a = os.open(log, os.O_WRONLY | os.O_APPEND)
os.write(a, b'more\\n')
os.close(a)
seen += os.read(r, 4096)
os.close(w)
os.close(r)
sys.stdout.write(seen.decode())
`;
  const s0 = fuseStats(mnt);
  const tail = sh('python3', ['-c', py, log]);
  t.equal(tail.code, 0, tail.stderr);
  t.equal(tail.stdout, '7 7\n14 14\n21 21\nline 0\nline 1\nline 2\nmore\n', 'every append seen by the reader, fstat and stat at once');
  const s1 = fuseStats(mnt) as FuseStats & Record<string, number>;
  t.equal(s1.passthroughOpens - s0.passthroughOpens, 1, 'the writers and the reader shared one backing file');
  t.equal(s1['op.write'] ?? 0, (s0 as FuseStats & Record<string, number>)['op.write'] ?? 0, 'no write reached the daemon');
  t.equal(readFileSync(join(src, 'app.log'), 'utf8'), 'line 0\nline 1\nline 2\nmore\n', 'the folder holds the bytes');
  t.ok(
    await until(() => {
      const e = vdfsOk(home, ['stat', '/l/app.log', '--json']).json<{ size: number; hash: string | null }>();
      return e.size === 26 && e.hash === b3sum(join(src, 'app.log'));
    }, 5_000),
    'the index has the final size and hash',
  );
  // A name replaced on the disk while a passthrough reader holds the old file: a new open reads
  // the new file (served in direct I/O by its own descriptor), not the old backing file.
  const held = spawn('bash', ['-c', `exec 3<"${f}"; sleep 30`], { stdio: 'ignore' });
  t.teardown(() => held.kill('SIGKILL'));
  await until(() => fuseStats(mnt).passthroughOpens > s1.passthroughOpens, 5_000);
  writeFileSync(join(src, 'local.bin.new'), 'replaced\n');
  sh('mv', [join(src, 'local.bin.new'), join(src, 'local.bin')]);
  t.ok(await until(() => sh('cat', [f]).stdout === 'replaced\n', 5_000), 'a new open while the old file is held shows the new bytes');
  held.kill('SIGKILL');
});

t.test('local reads and writes are answered by pread/pwrite in the addon, not in JS', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  writeFileSync(join(src, 'local.bin'), randomBytes(2 * 1024 * 1024 + 3));
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const before = fuseStats(mnt);
  t.equal(before.passthrough, 0);
  t.equal(sh('b3sum', ['--no-names', join(mnt, 'l', 'local.bin')]).stdout.trim(), b3sum(join(src, 'local.bin')), 'content through the mount');
  const after = fuseStats(mnt);
  t.ok(after.nativeReads > before.nativeReads, `reads answered natively (${after.nativeReads - before.nativeReads})`);
  t.ok(after.jsRequests - before.jsRequests < 20, `few requests reached JS (${after.jsRequests - before.jsRequests}: lookup, open, release...)`);
  // Writes at explicit offsets go to the real file by pwrite in the addon; the index still learns the content.
  const payload = randomBytes(5 * 1024 * 1024 + 9);
  const tmp = join(dir, 'payload.bin');
  writeFileSync(tmp, payload);
  t.equal(sh('dd', [`if=${tmp}`, `of=${join(mnt, 'l', 'written.bin')}`, 'bs=1M', 'conv=fsync', 'status=none']).code, 0);
  const wrote = fuseStats(mnt);
  t.ok(wrote.nativeWrites >= 5, `writes answered natively (${wrote.nativeWrites})`);
  t.equal(b3sum(join(src, 'written.bin')), b3sum(tmp), 'byte-exact on the disk');
  // The hash is computed after close, off the FUSE path: wait for it rather than race it.
  const hashOf = () => sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', join(mnt, 'l', 'written.bin')]).stdout;
  await until(() => hashOf() === b3sum(tmp), 20_000);
  t.equal(hashOf(), b3sum(tmp), 'and the index has its hash');
});

t.test('4 KiB direct reads of a local file are byte-exact whether the page cache holds the backing file (answered by the waiting reader) or not', async (t) => {
  const data = randomBytes(8 * 1024 * 1024);
  const { home, src, mnt } = indexedLocation(t, 'l', { 'r.bin': data });
  // The waiting reader is the /dev/fuse path: the fallback when the kernel offers no FUSE over io_uring.
  const m = await startMount(home, mnt, ['--no-fuse-uring']);
  t.teardown(() => m.stop());
  t.equal(fuseStats(mnt).ringQueues, 0, 'no io_uring queues with --no-fuse-uring');
  const offsets = Array.from({ length: 64 }, () => Math.floor(Math.random() * (data.length / 4096)) * 4096);
  const want = Buffer.concat(offsets.map((o) => data.subarray(o, o + 4096)));
  const readAll = (hold: string[]) => {
    const r = spawnSync('python3', ['-c', DIRECT_READER, join(mnt, 'l', 'r.bin'), offsets.join(','), ...hold], { maxBuffer: 1 << 24, timeout: 30_000 });
    t.equal(r.status, 0, r.stderr?.toString());
    return r.stdout;
  };
  // Warm: the reader holds the backing file mapped, so its pages are in the page cache.
  const s0 = fuseStats(mnt);
  t.ok(readAll([join(src, 'r.bin')]).equals(want), 'byte-exact, backing file cached');
  const s1 = fuseStats(mnt);
  t.ok(s1.nativeReads - s0.nativeReads >= offsets.length, `every read answered natively (${s1.nativeReads - s0.nativeReads})`);
  t.ok(s1.leadReads - s0.leadReads >= offsets.length / 2, `reads answered by the waiting reader from the page cache (${s1.leadReads - s0.leadReads})`);
  // Cold: dropped from the page cache, so the first RWF_NOWAIT pread says EAGAIN and the read takes the blocking path.
  t.equal(sh('sync', [join(src, 'r.bin')]).code, 0);
  t.equal(sh('dd', [`if=${join(src, 'r.bin')}`, 'iflag=nocache', 'count=0', 'status=none']).code, 0);
  t.equal(sh('fincore', ['-b', '-n', '-o', 'RES', join(src, 'r.bin')]).stdout.trim(), '0', 'the backing file is out of the page cache');
  t.ok(readAll([]).equals(want), 'byte-exact, backing file not cached');
  const s2 = fuseStats(mnt);
  const blocking = s2.nativeReads - s1.nativeReads - (s2.leadReads - s1.leadReads);
  t.ok(s2.nativeReads - s1.nativeReads >= offsets.length, `every read answered natively (${s2.nativeReads - s1.nativeReads})`);
  t.ok(blocking >= 1, `reads the page cache did not hold were handed over and read blocking (${blocking})`);
});

t.test('compat smoke: the fuse-native backend still reads, writes, lists and renames', async (t) => {
  const prev = process.env.VDFS_TEST_FUSE_BACKEND;
  process.env.VDFS_TEST_FUSE_BACKEND = 'compat';
  t.teardown(() => {
    if (prev === undefined) delete process.env.VDFS_TEST_FUSE_BACKEND;
    else process.env.VDFS_TEST_FUSE_BACKEND = prev;
  });
  const { mnt, src, m } = await mountWithOracle(t, 'c');
  t.ok(await until(() => m.output().includes('"fuseBackend":"compat"'), 5000), 'mounted with the compat backend');
  const root = join(mnt, 'c');
  const data = randomBytes(300_000);
  writeFileSync(join(root, 'w.bin'), data);
  t.ok(readFileSync(join(src, 'w.bin')).equals(data), 'written through the mount, on the disk');
  mkdirSync(join(root, 'd'));
  t.equal(sh('mv', [join(root, 'w.bin'), join(root, 'd', 'moved.bin')]).code, 0);
  t.same(readdirSync(join(root, 'd')), ['moved.bin']);
  t.equal(sh('b3sum', ['--no-names', join(root, 'd', 'moved.bin')]).stdout.trim(), b3sum(join(src, 'd', 'moved.bin')));
  t.equal(sh('rm', ['-r', join(root, 'd')]).code, 0);
  t.same(readdirSync(src), [], 'removed on the disk');
});

/** A shell loop hammering the mount with reads and writes until killed. */
function load(root: string): ChildProcess {
  const script = 'while true; do dd if=/dev/zero of=w.bin bs=1M count=64 status=none; cat w.bin r.bin > /dev/null; done';
  return spawn('bash', ['-c', script], { cwd: root, stdio: 'ignore', detached: true });
}

t.test('SIGTERM during heavy I/O unmounts and exits within 2 s', async (t) => {
  const { mnt, src, m } = await mountWithOracle(t, 'l');
  writeFileSync(join(src, 'r.bin'), randomBytes(8 << 20));
  t.ok(await until(() => sh('ls', [join(mnt, 'l')]).stdout.includes('r.bin'), 15_000));
  const io = load(join(mnt, 'l'));
  t.teardown(() => {
    try {
      process.kill(-io.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  await new Promise((r) => setTimeout(r, 1500)); // let the load run (not a synchronisation)
  const t0 = Date.now();
  m.proc.kill('SIGTERM');
  t.ok(await until(() => exited(m), 2000), `exited within 2 s (${Date.now() - t0} ms)`);
  t.equal(m.proc.exitCode, 0, 'exit status 0');
  t.notOk(isMounted(mnt), 'nothing left mounted');
});

for (const how of [
  ['fusermount', '-u'],
  ['umount', '-l'],
]) {
  t.test(`a mount removed from outside (${how.join(' ')}) ends the daemon within 2 s`, async (t) => {
    const { mnt, m } = await mountWithOracle(t, 'l');
    t.equal(sh('ls', [join(mnt, 'l')]).code, 0);
    const t0 = Date.now();
    const r = sh(how[0], [how[1], mnt]);
    t.equal(r.code, 0, r.stderr);
    t.ok(await until(() => exited(m), 2000), `exited within 2 s (${Date.now() - t0} ms)`);
    t.equal(m.proc.exitCode, 0, 'exit status 0');
    t.match(m.output(), /removed from outside/);
  });
}

t.test('kill -9 leaves a dead mount that the next start recovers', async (t) => {
  const { home, mnt, src, m } = await mountWithOracle(t, 'l');
  writeFileSync(join(src, 'f.txt'), 'survives');
  t.ok(await until(() => sh('cat', [join(mnt, 'l', 'f.txt')]).stdout === 'survives', 15_000));
  await m.kill9();
  t.ok(isMounted(mnt), 'the dead mount is still there');
  const m2 = await startMount(home, mnt);
  t.teardown(() => m2.stop());
  t.equal(sh('cat', [join(mnt, 'l', 'f.txt')]).stdout, 'survives', 'recovered');
});

t.test('the node table stays bounded: the kernel forgets nodes after drop_caches', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  for (let d = 0; d < 20; d++) {
    mkdirSync(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < 250; f++) writeFileSync(join(src, `d${d}`, `f${f}`), '');
  }
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const walk = sh('find', [mnt, '-printf', '%s %T@\n']);
  t.equal(walk.stdout.split('\n').filter(Boolean).length, 1 + 1 + 1 + 20 + 5000 + 1, 'walked every entry');
  const after = fuseStats(mnt).nodes;
  t.ok(after >= 5000, `the walk made the kernel hold nodes (${after})`);
  writeFileSync('/proc/sys/vm/drop_caches', '2');
  t.ok(await until(() => fuseStats(mnt).nodes < 100, 10_000), `forgotten after drop_caches (${fuseStats(mnt).nodes} left)`);
});

t.test('listings: one READDIRPLUS per folder, no LOOKUP per name; the kernel reuses a listing until the index changes', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(join(src, 'd'), { recursive: true });
  for (let f = 0; f < 2000; f++) writeFileSync(join(src, 'd', `f${f}`), 'x'.repeat(f % 500));
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  t.ok(await until(() => m.output().includes('start-up rescan done'), 20_000), 'start-up rescan done');
  const ops = () => fuseStats(mnt) as unknown as Record<string, number>;
  const n = (s: Record<string, number>, k: string) => s[k] ?? 0;
  const d = join(mnt, 'l', 'd');
  const s0 = ops();
  const walk = sh('find', [d, '-printf', '%s\n']);
  const sizes = (out: string) => out.split('\n').filter(Boolean).sort().join(',');
  t.equal(sizes(walk.stdout), sizes(sh('find', [join(src, 'd'), '-printf', '%s\n']).stdout), 'walked every name, with the sizes on the disk');
  const s1 = ops();
  t.ok(n(s1, 'op.readdirplus') > n(s0, 'op.readdirplus'), 'listed with READDIRPLUS');
  t.ok(n(s1, 'js.readdirplus') > n(s0, 'js.readdirplus'), `JS's time on them is counted (js.readdirplus ${n(s1, 'js.readdirplus')} us)`);
  t.ok(n(s1, 'op.lookup') - n(s0, 'op.lookup') <= 2, `and no LOOKUP but of l and d, none for the 2,000 names in d (several chunks) (${n(s1, 'op.lookup') - n(s0, 'op.lookup')})`);
  t.equal(n(s1, 'op.readdir'), 0, 'never a plain READDIR');
  // Listed again at once, the kernel keeps the listing; unless another job dropped the kernel's
  // caches meanwhile (the test files run in parallel, some drop caches): then listed and tried again.
  const drops = () => (readFileSync('/proc/vmstat', 'utf8').match(/^drop_\w+ \d+$/gm) ?? []).join();
  let [before, s2] = [s1, s1];
  for (let attempt = 0; attempt < 5; attempt++) {
    const d0 = drops();
    if (attempt > 0) sh('ls', [d]);
    before = ops();
    sh('ls', ['-l', d]);
    s2 = ops();
    if (drops() === d0) break;
  }
  t.equal(n(s2, 'op.readdirplus'), n(before, 'op.readdirplus'), 'listed again at once: the kernel kept the listing (no READDIRPLUS)');
  t.ok(n(s2, 'op.opendir') > n(before, 'op.opendir'), 'though it opened the folder');
  // The ACL and the SELinux label are EOPNOTSUPP (answered in the addon), which ls remembers per device.
  // (op.getxattr also counts this test's own reads of user.vdfs.fuse, which JS answers.)
  const asked = n(s2, 'native.getxattr') - n(before, 'native.getxattr');
  t.ok(asked >= 1 && asked <= 4, `ls -l asked for the ACL and label of its first name only, not of all 2,000 (${asked})`);
  // A name added on the disk: once the index has it, the next listing is taken again.
  writeFileSync(join(src, 'd', 'new'), 'n');
  t.ok(await until(() => vdfsOk(home, ['ls', '/l/d']).stdout.includes(' new'), 20_000), 'the watcher indexed the new name');
  t.ok(sh('ls', [d]).stdout.split('\n').includes('new'), 'and the mount lists it (not the kept listing)');
  t.ok(n(ops(), 'op.readdirplus') > n(s2, 'op.readdirplus'), 'listed again with READDIRPLUS');
});

t.test('a folder listed empty shows a name added on the disk (the kernel keeps no empty listing it cannot drop)', async (t) => {
  const { mnt, src, home } = await mountWithOracle(t, 'l');
  mkdirSync(join(src, 'empty'));
  t.ok(await until(() => vdfsOk(home, ['ls', '/l']).stdout.includes(' empty'), 20_000), 'the watcher indexed the folder');
  for (const rel of ['', 'empty']) {
    const inMount = join(mnt, 'l', rel);
    t.same(
      sh('ls', ['-A', inMount])
        .stdout.split('\n')
        .filter((n) => n && n !== 'empty'),
      [],
      `/l/${rel} listed with nothing in it`,
    );
    writeFileSync(join(src, rel, 'late.bin'), 'x');
    t.ok(await until(() => vdfsOk(home, ['ls', `/l/${rel}`]).stdout.includes(' late.bin'), 20_000), 'the watcher indexed the new file');
    t.ok(sh('ls', [inMount]).stdout.split('\n').includes('late.bin'), `and /l/${rel} lists it at once`);
  }
  t.same(
    sh('ls', ['-a', join(mnt, 'l', 'empty')])
      .stdout.split('\n')
      .filter(Boolean),
    ['.', '..', 'late.bin'],
    'dot entries as on a disk',
  );
});
