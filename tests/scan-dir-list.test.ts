import t from 'tap';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listDir, nativeStatDir, T_BLOCKDEV, T_CHARDEV, T_DIR, T_FIFO, T_FILE, T_SYMLINK, type DirListing } from '../index/dir-list';
import { tempDir } from './helpers/cli';

// The scanner's directory listing (index/dir-list.ts): the addon's batched fstatat and the JS
// fallback (lstat of /proc/self/fd/N/name) against GNU stat, the oracle, on every kind of name.

const TYPES: Record<string, number> = {
  'regular file': T_FILE,
  'regular empty file': T_FILE,
  directory: T_DIR,
  'symbolic link': T_SYMLINK,
  fifo: T_FIFO,
  'character special file': T_CHARDEV,
  'block special file': T_BLOCKDEV,
};

interface Row {
  type: number;
  version: string;
  mode: number;
  size: number;
  mtime: string;
  rdev: string;
}

/** What GNU stat says of each name in `dir` (without following symlinks). */
function oracle(dir: string, names: string[]): Map<string, Row> {
  const out = execFileSync('stat', ['-c', '%n|%F|%i|%s|%.9Y|%a|%t|%T', ...names.map((n) => join(dir, n))], { encoding: 'utf8' });
  const rows = new Map<string, Row>();
  for (const line of out.trim().split('\n')) {
    const [path, kind, ino, size, mtime, mode, major, minor] = line.split('|');
    const [sec, nsec] = mtime.split('.');
    const ns = BigInt(sec) * 1_000_000_000n + BigInt(nsec);
    rows.set(path.slice(dir.length + 1), {
      type: TYPES[kind],
      version: `${ino}:${size}:${ns}`,
      mode: parseInt(mode, 8),
      size: Number(size),
      mtime: `${sec}.${nsec}`,
      rdev: TYPES[kind] === T_CHARDEV || TYPES[kind] === T_BLOCKDEV ? `${parseInt(major, 16)}:${parseInt(minor, 16)}` : '0:0',
    });
  }
  return rows;
}

/** The listing as rows by name, in the oracle's terms (Linux's rdev encoding decoded). */
function rows(l: DirListing): Map<string, Row> {
  const m = new Map<string, Row>();
  l.names.forEach((name, i) => {
    const rdev = l.rdevs[i];
    const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
    const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
    m.set(name, {
      type: l.types[i],
      version: l.versions[i],
      mode: l.modes[i],
      size: l.sizes[i],
      mtime: `${l.mtimeSec[i]}.${String(l.mtimeNsec[i]).padStart(9, '0')}`,
      rdev: `${major}:${minor}`,
    });
  });
  return m;
}

t.test('the addon has statDir (the scanner would fall back to the slower lstat path without it)', async (t) => {
  t.type(nativeStatDir(), 'function');
});

t.test('both listings say what GNU stat says of files, directories, symlinks, FIFOs and devices', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, 'some bytes'), 'x'.repeat(12345));
  utimesSync(join(dir, 'some bytes'), new Date('2020-01-02T03:04:05.123Z'), new Date('2020-01-02T03:04:05.987Z'));
  writeFileSync(join(dir, 'ünïcödé ✓'), 'u');
  mkdirSync(join(dir, 'sub'), { mode: 0o750 });
  symlinkSync('/etc/passwd', join(dir, 'to-passwd'));
  symlinkSync('nowhere', join(dir, 'dangling'));
  execFileSync('mkfifo', [join(dir, 'pipe')]);
  execFileSync('mknod', [join(dir, 'null-dev'), 'c', '1', '3']);
  execFileSync('mknod', [join(dir, 'blk-dev'), 'b', '7', '300']);
  const names = ['empty', 'some bytes', 'ünïcödé ✓', 'sub', 'to-passwd', 'dangling', 'pipe', 'null-dev', 'blk-dev'];
  const want = oracle(dir, names);
  const native = listDir(dir, undefined, nativeStatDir());
  const js = listDir(dir, undefined, undefined);
  t.same([...native.names].sort(), [...names].sort(), 'native: every name, no . or ..');
  t.same([...js.names].sort(), [...names].sort(), 'fallback: every name');
  t.same(native.errors, []);
  for (const [label, got] of [
    ['native', rows(native)],
    ['fallback', rows(js)],
  ] as const) {
    for (const name of names) t.same(got.get(name), want.get(name), `${label}: ${name}`);
  }
  t.equal(rows(native).get('to-passwd')!.size, '/etc/passwd'.length, 'a symlink is described, never followed');
});

t.test('a directory of 10,000 names is listed whole (the name buffer grows)', async (t) => {
  const dir = tempDir(t);
  const names: string[] = [];
  for (let i = 0; i < 10_000; i++) names.push(`file-with-a-longish-name-${i}`);
  for (const n of names) closeSync(openSync(join(dir, n), 'w'));
  const l = listDir(dir, undefined, nativeStatDir());
  t.equal(l.names.length, names.length);
  t.same(new Set(l.names), new Set(names));
  t.ok(l.types.every((x) => x === T_FILE));
  rmSync(join(dir, names[0]));
  t.equal(listDir(dir, undefined, nativeStatDir()).names.length, names.length - 1, 'a second listing sees the removal');
});

t.test('statDir answers -ENOTDIR for a file descriptor, and listDir refuses a swapped directory', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'f'), '');
  const fd = openSync(join(dir, 'f'), 'r');
  t.teardown(() => closeSync(fd));
  t.equal(nativeStatDir()!(fd), -20, 'ENOTDIR');
  t.equal(nativeStatDir()!(-1), -9, 'EBADF: a bad descriptor is an answer, not a crash');
  mkdirSync(join(dir, 'real'));
  writeFileSync(join(dir, 'real', 'secret'), 's');
  symlinkSync(join(dir, 'real'), join(dir, 'link'));
  for (const fn of [nativeStatDir(), undefined]) {
    t.throws(() => listDir(join(dir, 'link'), '1', fn), { code: 'ENOTDIR' }, 'a symlink where a directory was is not followed');
  }
});
