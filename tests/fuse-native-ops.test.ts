import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, VDFS_BIN, vdfsOk, until } from './helpers/cli';
import { startFaultProxy } from './helpers/fault-proxy';
import { mountWithOracle, sh, startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon } from './helpers/peer';
import { startS3Server } from './helpers/s3-server';

/** Runs a Python snippet (for syscalls the shell tools do not expose) in `cwd`; stdout or "ERR <errno name>". */
function py(cwd: string, code: string): string {
  const r = sh(
    'python3',
    ['-c', `import os, ctypes, errno, sys\ntry:\n${code.replace(/^/gm, '    ')}\nexcept OSError as e:\n    print('ERR', errno.errorcode.get(e.errno, e.errno))`],
    { cwd },
  );
  return (r.stdout + r.stderr).trim();
}

const RENAMEAT2 = (flags: number) => `libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, b'a', -100, b'b', ${flags})
print('ok' if r == 0 else 'ERR ' + errno.errorcode[ctypes.get_errno()])`;

t.test('new ops answer like the disk beneath: rename flags, fallocate, lseek, copy_file_range', async (t) => {
  const { mnt, src, oracle, home } = await mountWithOracle(t, 'l');
  const root = join(mnt, 'l');
  for (const dir of [root, oracle]) {
    writeFileSync(join(dir, 'a'), 'A');
    writeFileSync(join(dir, 'b'), 'B');
  }
  t.equal(py(root, RENAMEAT2(1)), py(oracle, RENAMEAT2(1)), 'RENAME_NOREPLACE over an existing name: EEXIST on both');
  t.equal(py(root, RENAMEAT2(1)), 'ERR EEXIST');
  for (const dir of [root, oracle]) sh('rm', [join(dir, 'b')]);
  t.equal(py(root, RENAMEAT2(1)), 'ok', 'RENAME_NOREPLACE to a free name works');
  t.equal(readFileSync(join(src, 'b'), 'utf8'), 'A', 'and moved the file on the disk');
  // RENAME_EXCHANGE on a local folder: the disk's own renameat2, both names swapped atomically.
  writeFileSync(join(root, 'a'), 'A2');
  writeFileSync(join(oracle, 'a'), 'A2');
  writeFileSync(join(oracle, 'b'), 'A'); // as in the mount, where a was renamed to b above
  t.equal(py(root, RENAMEAT2(2)), py(oracle, RENAMEAT2(2)), 'RENAME_EXCHANGE answers as on the disk');
  t.equal(readFileSync(join(src, 'a'), 'utf8'), 'A', 'swapped on the disk: a has the old b');
  t.equal(readFileSync(join(src, 'b'), 'utf8'), 'A2', 'and b the old a');
  t.equal(readFileSync(join(root, 'a'), 'utf8'), 'A', 'the mount shows the swap at once');
  t.equal(readFileSync(join(root, 'b'), 'utf8'), 'A2');
  mkdirSync(join(root, 'dx'));
  writeFileSync(join(root, 'dx', 'in'), 'inside');
  t.equal(py(root, RENAMEAT2(2).replace("b'b'", "b'dx'")), 'ok', 'a file and a folder swap too');
  t.equal(readFileSync(join(root, 'a', 'in'), 'utf8'), 'inside', 'the folder is now at a, with its content');
  t.equal(readFileSync(join(src, 'dx'), 'utf8'), 'A', 'and the file at dx, on the disk');
  t.equal(py(root, RENAMEAT2(2).replace("b'b'", "b'nope'")), 'ERR ENOENT', 'exchange with a missing name: ENOENT');
  t.equal(py(root, RENAMEAT2(3)), 'ERR EINVAL', 'NOREPLACE with EXCHANGE: EINVAL');
  const ls = vdfsOk(home, ['ls', '/l']).stdout;
  t.match(ls, /^d .* a\/$/m, 'the index has the folder at a');
  t.match(ls, /^- +1 .* dx$/m, 'and the file at dx');

  t.equal(sh('fallocate', ['-l', '1048576', join(root, 'fa')]).code, 0, 'fallocate (mode 0) works');
  t.equal(sh('stat', ['-c', '%s', join(root, 'fa')]).stdout.trim(), '1048576', 'and sets the size');
  // Local files: the disk's own fallocate, so punching a hole makes a hole on the disk.
  writeFileSync(join(root, 'fp'), Buffer.alloc(65536, 1));
  const punch = sh('fallocate', ['-p', '-o', '0', '-l', '4096', join(root, 'fp')]);
  t.equal(punch.code, 0, `punching a hole works like on the disk ${punch.stderr}`);
  t.equal(sh('stat', ['-c', '%s', join(src, 'fp')]).stdout.trim(), '65536', 'the size is kept');
  t.equal(
    readFileSync(join(src, 'fp'))
      .subarray(0, 4096)
      .every((b) => b === 0),
    true,
    'the hole reads as zeros on the disk',
  );
  t.equal(
    readFileSync(join(root, 'fp'))
      .subarray(0, 4096)
      .every((b) => b === 0),
    true,
    'and through the mount',
  );

  // A sparse file on the disk: SEEK_DATA/SEEK_HOLE through the mount give the disk's answers.
  const seek = `fd = os.open('sparse', os.O_RDONLY)\nprint(os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, 8 << 20, os.SEEK_DATA))`;
  sh('bash', ['-c', 'truncate -s 8M sparse && printf data >> sparse && printf head | dd of=sparse conv=notrunc status=none'], { cwd: src });
  t.ok(await until(() => sh('stat', ['-c', '%s', join(root, 'sparse')]).stdout.trim() === String((8 << 20) + 4), 15_000), 'indexed');
  t.equal(py(root, seek), py(src, seek), 'SEEK_DATA/SEEK_HOLE as on the disk');
  t.equal(py(root, `fd = os.open('sparse', os.O_RDONLY)\nos.lseek(fd, 9 << 20, os.SEEK_DATA)`), 'ERR ENXIO', 'past the end: ENXIO');

  const data = randomBytes(3 * 1024 * 1024 + 5);
  writeFileSync(join(root, 'big'), data);
  const copy = `fi = os.open('big', os.O_RDONLY)\nfo = os.open('copy', os.O_WRONLY | os.O_CREAT, 0o644)\nn = 0\nwhile True:\n    c = os.copy_file_range(fi, fo, 1 << 30)\n    if c == 0: break\n    n += c\nos.close(fo)\nprint(n)`;
  t.equal(py(root, copy), String(data.length), 'copy_file_range copied everything');
  t.equal(b3sum(join(src, 'copy')), b3sum(join(src, 'big')), 'byte-exact');
});

t.test('chown and xattrs answer honestly', async (t) => {
  const { mnt, src } = await mountWithOracle(t, 'l');
  const f = join(mnt, 'l', 'f');
  writeFileSync(f, 'x');
  // A local location: chown is the disk's chown (root may; see fuse-posix-model for another user).
  t.equal(sh('chown', ['12345:23456', f]).code, 0, 'chown as root succeeds');
  t.equal(sh('stat', ['-c', '%u:%g', f]).stdout.trim(), '12345:23456', 'the mount shows the new owner');
  t.equal(sh('stat', ['-c', '%u:%g', join(src, 'f')]).stdout.trim(), '12345:23456', 'and the disk has it');
  t.equal(sh('chown', [String(process.getuid!()), f]).code, 0, 'and back');
  t.match(sh('setfattr', ['-n', 'user.x', '-v', '1', f]).stderr, /not supported/, 'setxattr: EOPNOTSUPP');
  t.match(sh('setfattr', ['-n', 'user.y', '-v', '1', f]).stderr, /not supported/, 'and again (the kernel remembers ENOSYS)');
  t.match(sh('getfattr', ['-n', 'user.unknown', f]).stderr, /No such attribute/, 'an unknown user attribute: ENODATA');
  // No ACLs and no security labels: EOPNOTSUPP, so ls -l stops asking after the first file.
  t.match(sh('getfattr', ['-n', 'security.selinux', f]).stderr, /not supported/, 'security.*: EOPNOTSUPP');
  t.match(sh('getfattr', ['-n', 'system.posix_acl_access', f]).stderr, /not supported/, 'system.posix_acl_*: EOPNOTSUPP');
  for (let i = 0; i < 200; i++) writeFileSync(join(src, `many${i}`), '');
  const getxattrs = () => (JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as Record<string, number>)['op.getxattr'] ?? 0;
  const before = getxattrs();
  t.ok(await until(() => sh('bash', ['-c', `ls -l ${join(mnt, 'l')} | grep -c many`]).stdout.trim() === '200', 15_000), 'ls -l lists the 200 new files');
  const asked = getxattrs() - before - 1;
  t.ok(asked < 20, `ls -l of 200 files asked ${asked} getxattr (not two per file)`);
});

t.test('changes on the disk reach the kernel caches at once (invalidation), never stale bytes', async (t) => {
  const { mnt, src } = await mountWithOracle(t, 'l');
  const f = join(mnt, 'l', 'grow.txt');
  writeFileSync(join(src, 'grow.txt'), 'first\n');
  t.ok(await until(() => sh('cat', [f]).stdout === 'first\n', 15_000), 'visible');
  t.equal(sh('cat', [f]).stdout, 'first\n', 'cached by the kernel now (attributes for 10 s)');
  appendFileSync(join(src, 'grow.txt'), 'second\n');
  const t0 = Date.now();
  // Attributes are cached for 10 s: seeing the new size well before means the kernel was told.
  // stat is answered from the kernel's attribute cache alone: only an invalidation shows the new size early.
  const size = () => sh('stat', ['-c', '%s', f]).stdout.trim();
  t.ok(await until(() => size() === '13' && sh('cat', [f]).stdout === 'first\nsecond\n', 5000), `the appended bytes show (${Date.now() - t0} ms, attr timeout 10 s)`);
  writeFileSync(join(src, 'grow.txt'), 'FIRST\nSECOND\n'); // same size, other bytes
  t.ok(await until(() => sh('cat', [f]).stdout === 'FIRST\nSECOND\n', 5000), 'a same-size rewrite shows, no stale pages');
  writeFileSync(join(src, 'gone.txt'), 'x');
  t.ok(await until(() => sh('cat', [join(mnt, 'l', 'gone.txt')]).stdout === 'x', 15_000));
  sh('rm', [join(src, 'gone.txt')]);
  t.ok(await until(() => sh('stat', [join(mnt, 'l', 'gone.txt')]).code !== 0, 5000), 'a name deleted on the disk is gone from the mount before the entry timeout');
  // A file the kernel got from a listing (READDIRPLUS, no LOOKUP), then opened: checked too.
  mkdirSync(join(src, 'sub'));
  writeFileSync(join(src, 'sub', 'listed.txt'), 'one\n');
  const listed = join(mnt, 'l', 'sub', 'listed.txt');
  t.ok(await until(() => sh('ls', ['-l', join(mnt, 'l', 'sub')]).stdout.includes('listed.txt'), 15_000), 'listed');
  t.equal(sh('cat', [listed]).stdout, 'one\n', 'and read (its pages cached)');
  appendFileSync(join(src, 'sub', 'listed.txt'), 'two\n');
  t.ok(
    await until(() => sh('stat', ['-c', '%s', listed]).stdout.trim() === '8' && sh('cat', [listed]).stdout === 'one\ntwo\n', 5000),
    'its change shows before the attribute timeout',
  );
});

t.test('a name whose object changes type on the disk shows the new one, never EIO', async (t) => {
  const { mnt, src } = await mountWithOracle(t, 'l');
  mkdirSync(join(src, 'd'));
  writeFileSync(join(src, 'd', 'in.txt'), 'in\n');
  writeFileSync(join(src, 'other.txt'), 'other\n');
  const d = join(mnt, 'l', 'd');
  t.ok(await until(() => sh('cat', [join(d, 'in.txt')]).stdout === 'in\n', 15_000), 'the folder and its file are seen');
  t.equal(sh('stat', ['-c', '%F', d]).stdout.trim(), 'directory', 'the kernel holds d as a folder');
  // A shell standing in d/ holds the old inode the whole time.
  const holder = spawn('sh', ['-c', 'read x; ls; stat -c %F .'], { cwd: d, stdio: ['pipe', 'pipe', 'pipe'] });
  const held = { out: '', err: '' };
  holder.stdout.on('data', (b: Buffer) => (held.out += b.toString()));
  holder.stderr.on('data', (b: Buffer) => (held.err += b.toString()));
  const heldDone = new Promise<void>((resolve) => holder.on('close', () => resolve()));
  sh('rm', ['-r', join(src, 'd')]);
  writeFileSync(join(src, 'd'), 'now a file\n');
  const st = () => sh('stat', ['-c', '%F', d]);
  t.ok(await until(() => st().stdout.trim() === 'regular file', 5000), `d shows as a file before the entry timeout (${st().stdout.trim()} ${st().stderr.trim()})`);
  t.equal(sh('cat', [d]).stdout, 'now a file\n', 'with its bytes');
  sh('rm', [join(src, 'd')]);
  sh('ln', ['-s', 'other.txt', join(src, 'd')]);
  t.ok(await until(() => st().stdout.trim() === 'symbolic link', 5000), `then as a link (${st().stdout.trim()} ${st().stderr.trim()})`);
  t.equal(sh('cat', [d]).stdout, 'other\n', 'followed by the kernel');
  holder.stdin.end('\n');
  await heldDone;
  t.notMatch(held.err, /Input\/output error/, `the shell standing in the old folder gets no EIO (${held.err.trim()})`);
  t.notMatch(held.out, /in\.txt/, 'nor a listing of the folder that is gone');
});

t.test('fstat of a file unlinked while open answers its own attributes after the name was reused', async (t) => {
  const { mnt } = await mountWithOracle(t, 'l');
  const f = join(mnt, 'l', 'f.txt');
  // Opened, unlinked, the name reused by a bigger file, then fstat on the open descriptor (python's os.fstat).
  const py = `
import os, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b'12345')
os.unlink(p)
with open(p, 'wb') as g: g.write(b'x' * 1000)
st = os.fstat(fd)
print(st.st_size, st.st_nlink, oct(st.st_mode & 0o777))
`;
  const r = sh('python3', ['-c', py, f]);
  t.equal(r.stdout.trim(), '5 0 0o600', `the unlinked file, not the new one (${r.stderr})`);
  t.equal(sh('stat', ['-c', '%s', f]).stdout.trim(), '1000', 'the name shows the new file');
});

t.test('a change in a bucket reaches the kernel caches with the next poll', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  await s3.put('q/obj.txt', 'version one\n');
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/q/')]);
  vdfsOk(home, ['scan']);
  vdfsOk(home, ['config', 'set', 'scan.remoteInterval', '1']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const f = join(mnt, 'cloud', 'obj.txt');
  t.equal(sh('cat', [f]).stdout, 'version one\n');
  await s3.put('q/obj.txt', 'version two, longer\n');
  // The poll runs every second; attributes are cached for 10 s: well before that means the kernel was told.
  // stat alone reads the kernel's attribute cache: the new size before 10 s means an invalidation.
  t.ok(await until(() => sh('stat', ['-c', '%s', f]).stdout.trim() === '20' && sh('cat', [f]).stdout === 'version two, longer\n', 7000), 'the new object shows through the mount');
});

t.test("a change on a peer reaches B's kernel caches through its change feed, never stale bytes", async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'note.txt': 'version one\n' });
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  const b = makeNode(dir, 'beta');
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const m = await startMount(b.home, join(dir, 'mnt'));
  t.teardown(() => m.stop());
  const f = join(dir, 'mnt', 'adocs', 'note.txt');
  t.equal(sh('cat', [f]).stdout, 'version one\n', "B reads A's file; the kernel now caches it (attributes for 10 s)");
  writeFileSync(join(a.src, 'note.txt'), 'version two, longer\n');
  const t0 = Date.now();
  // A's watcher, its change feed and B's replication take well under the 10 s attribute
  // timeout: seeing the new bytes before it means B's kernel was told, not that it expired.
  // stat is answered from the kernel's attribute cache alone: only an invalidation shows the new size early.
  const seen = () => sh('stat', ['-c', '%s', f]).stdout.trim() === '20' && sh('cat', [f]).stdout === 'version two, longer\n';
  t.ok(await until(seen, 8000), `the new size and bytes show through B's mount (${Date.now() - t0} ms)`);
});

t.test('a read stalled on a remote is interrupted by a signal within 1 s', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const proxy = await startFaultProxy(s3.endpoint);
  t.teardown(() => proxy.close());
  await s3.put('p/slow.bin', randomBytes(1 << 20));
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/p/', proxy.endpoint)]);
  // Not vdfsOk: a synchronous child would block this process, and the proxy with it.
  const scan = spawn(process.execPath, [VDFS_BIN, '--home', home, 'scan'], { stdio: 'ignore' });
  t.equal(await new Promise((r) => scan.once('exit', r)), 0, 'scanned through the proxy');
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  proxy.inject({ kind: 'delay', ms: 30_000 }, { times: Infinity, match: (req) => req.method === 'GET' && (req.url ?? '').includes('slow.bin') });
  // O_DIRECT: the read waits for the daemon's answer in the caller (no page lock), so the kernel
  // sends INTERRUPT on a caught signal; the caller's handler then sees EINTR.
  const code = `import os, signal, errno, sys
def stop(*a):
    raise InterruptedError()
signal.signal(signal.SIGINT, stop)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
print('reading', flush=True)
try:
    os.read(fd, 4096)
    print('read')
except InterruptedError:
    print('EINTR')
except OSError as e:
    print('ERR', errno.errorcode.get(e.errno))`;
  const reader = spawn('python3', ['-c', code, join(mnt, 'cloud', 'slow.bin')], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    reader.kill('SIGKILL');
  });
  let out = '';
  reader.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  reader.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  t.ok(await until(() => proxy.stats.faulted > 0, 15_000), 'the read is stalled at the remote');
  const t0 = Date.now();
  reader.kill('SIGINT');
  t.ok(await until(() => reader.exitCode !== null || reader.signalCode !== null, 1000), `the reader ended within 1 s (${Date.now() - t0} ms)`);
  t.match(out, /EINTR/, `interrupted, not answered: ${out}`);
  proxy.clear();
  t.equal(sh('ls', [join(mnt, 'cloud')]).stdout.trim(), 'slow.bin', 'the daemon still answers');
});
