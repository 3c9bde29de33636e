import t from 'tap';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { until, vdfsOk } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';

// What `tar x` does to every file it writes: create, write, futimens, fchown, fchmod on the open
// descriptor, then close; checked from a second process while the file is still open, and after.
const WRITER = `
import os, sys, json
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b'x' * 5000)
os.utime(fd, ns=(1_400_000_000_123_456_789, 1_500_000_000_987_654_321))
os.fchown(fd, 1234, 5678)
os.fchmod(fd, 0o640)
st = os.fstat(fd)
sys.stdout.write(json.dumps({'open': [str(v) for v in [st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns, st.st_size]]}) + '\\n')
sys.stdout.flush()
sys.stdin.readline()
os.close(fd)
`;

const view = (st: { mode: number | bigint; uid: number | bigint; gid: number | bigint; mtimeNs: bigint; atimeNs: bigint; size: number | bigint }) => [
  Number(st.mode) & 0o7777,
  Number(st.uid),
  Number(st.gid),
  st.mtimeNs.toString(),
  st.atimeNs.toString(),
  Number(st.size),
];

t.test('fchmod, fchown and futimens on a file open for writing (tar x) land on the disk, show through the mount while open, and reach the index on close', async (t) => {
  const { home, src, mnt } = await mountWithOracle(t, 'd');
  const { spawn } = await import('node:child_process');
  const file = join(mnt, 'd', 'f.c');
  const py = spawn('python3', ['-c', WRITER, file], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString()));
  py.stderr.on('data', (d: Buffer) => (err += d.toString()));
  t.ok(await until(() => out.includes('\n') || py.exitCode !== null, 20_000), `the writer ran: ${err}`);
  const want = [0o640, 1234, 5678, '1500000000987654321', '1400000000123456789', 5000];
  const seen = JSON.parse(out.split('\n')[0]) as { open: string[] };
  t.same(seen.open, want.map(String), 'fstat of the open file: mode, owner, exact times and size');
  // Still open: the backing file has them, and another process's stat through the mount too.
  t.same(view(statSync(join(src, 'f.c'), { bigint: true })).map(String), want.map(String), 'the backing file has them while open');
  t.same(view(statSync(file, { bigint: true })).map(String), want.map(String), 'stat through the mount while open');
  py.stdin.end('\n');
  t.ok(await until(() => py.exitCode !== null, 10_000), 'the writer closed the file');
  t.equal(py.exitCode, 0, err);
  // The index follows on close: its mtime (exactly) and size.
  const indexed = () => JSON.parse(vdfsOk(home, ['stat', '--json', '/d/f.c']).stdout) as { size: number; mtime: string; hash: string | null };
  t.ok(await until(() => indexed().hash !== null, 20_000), 'the closed file is hashed');
  t.same([indexed().size, indexed().mtime], [5000, new Date(1_500_000_000_987).toISOString()], 'the index has the size and mtime set through the descriptor');
  t.same(view(statSync(file, { bigint: true })).map(String), want.map(String), 'stat through the mount after close');
  // An ls -l through the mount, from the index and the disk's stats (a fresh listing).
  const ls = sh('ls', ['-ln', '--time-style=+%s', join(mnt, 'd')]);
  t.match(ls.stdout, /-rw-r----- 1 1234 5678 5000 1500000000 f\.c/, 'ls -l through the mount shows mode, owner, size and mtime');
});
