import t, { type Test } from 'tap';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { indexedLocation, sh, startMount } from './helpers/mount';

// Gaps left by the first POSIX pass (issue 16): what a listing shows of entries only a scan
// has seen, and inode numbers that must not move when a hard link comes or goes; files open
// for writing under names that change (hard links, unlink, rename, exchange, a second writer).

/** An empty location `m`, indexed and mounted (stopped at teardown). */
async function mountedEmpty(t: Test): Promise<{ dir: string; src: string; mnt: string }> {
  const { dir, home, src, mnt } = indexedLocation(t, 'm', {});
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  return { dir, src, mnt };
}

t.test('a listing right after the scan shows the disk owners, link counts and inode numbers, before any lookup', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'd', 'theirs.txt'), 'x');
  writeFileSync(join(src, 'd', 'mine.txt'), 'y');
  chownSync(join(src, 'd', 'theirs.txt'), 1234, 5678);
  chownSync(join(src, 'd'), 4321, 8765);
  sh('ln', [join(src, 'd', 'mine.txt'), join(src, 'd', 'mine-too.txt')]);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'm', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  // find -printf takes everything from the listing (READDIRPLUS): no lookup came before it.
  const find = (root: string) => sh('find', ['.', '-printf', '%p %U:%G %n %i %m\n'], { cwd: root }).stdout.split('\n').sort().join('\n');
  const onMount = find(join(mnt, 'm'));
  const onDisk = find(src);
  const strip = (s: string) => s.replace(/ \d+ (\d+)$/gm, ' $1'); // inode numbers differ (the mount's are above every entry id)
  t.equal(strip(onMount), strip(onDisk), "owners, groups, link counts and modes of the listing are the disk's");
  const ino = (s: string, p: string) => new RegExp(`^${p.replace('.', '\\.')} \\S+ \\d+ (\\d+)`, 'm').exec(s)?.[1];
  t.equal(ino(onMount, './d/mine.txt'), ino(onMount, './d/mine-too.txt'), 'hard links share one inode number in the listing');
  t.not(ino(onMount, './d/mine.txt'), ino(onMount, './d/theirs.txt'), 'other files have their own');
});

t.test('an inode number stays the same when a file goes from one link to two and back', async (t) => {
  const { mnt } = await mountedEmpty(t);
  const r = sh('sh', [
    '-c',
    'cd "$1" && echo a > f && i1=$(stat -c %i f) && ln f g && i2=$(stat -c %i f) && i3=$(stat -c %i g) && rm g && i4=$(stat -c %i f) && ln f h && i5=$(stat -c %i h) && rm f && i6=$(stat -c %i h) && echo "$i1 $i2 $i3 $i4 $i5 $i6"',
    'sh',
    join(mnt, 'm'),
  ]);
  t.equal(r.code, 0, r.stderr);
  const inos = r.stdout.trim().split(' ');
  t.equal(inos.length, 6);
  t.same(new Set(inos).size, 1, `one inode number through link, unlink, link, unlink (${r.stdout.trim()})`);
  // As on the disk: a new file at the same name (a rename over it) is another inode.
  const again = sh('sh', ['-c', 'cd "$1" && i1=$(stat -c %i h) && echo b > n && mv n h && i2=$(stat -c %i h) && [ "$i1" != "$i2" ] && echo moved', 'sh', join(mnt, 'm')]);
  t.equal(again.stdout.trim(), 'moved', 'a file renamed over it has its own number, as on the disk');
});

t.test('a file written through one hard link shows its new size through every link while open, in listings too', async (t) => {
  const { src, mnt } = await mountedEmpty(t);
  // The writes go straight to the file (the addon's pwrite); a listing (READDIRPLUS) in between
  // hands the kernel attributes for both names of the one inode, and the kernel keeps the first.
  // A name other than the node's first (here `a`, listed before `b`) used to show the size from
  // before the write, and the kernel then gave that size to every stat, fstat too.
  const r = sh('python3', [
    '-c',
    `import os, sys
m = sys.argv[1]
with open(m + '/b', 'wb') as f: f.write(b'x' * 5673)
os.link(m + '/b', m + '/a')
for first, other in (('b', 'a'), ('a', 'b')):
    fd = os.open(m + '/' + first, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b'y' * 47287)
    os.listdir(m)
    print(first, os.lstat(m + '/' + other).st_size, os.lstat(m + '/' + first).st_size, os.fstat(fd).st_size)
    os.close(fd)
`,
    join(mnt, 'm'),
  ]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'b 47287 47287 47287\na 47287 47287 47287\n', 'the other name, this name and the descriptor: the size written, both ways round');
  const disk = sh('stat', ['-c', '%s %h', join(src, 'a'), join(src, 'b')]).stdout;
  t.equal(disk, '47287 2\n47287 2\n', 'and so the disk');
});

t.test('a name taken while the file it held is still open for writing shows what took it; an exchange with an open file swaps', async (t) => {
  const { dir, mnt } = await mountedEmpty(t);
  // Every line: what lstat says of a name, or what renameat2 answered. The same script on the
  // disk is the oracle. Before: the FIFO and the file renamed over an open file's name showed
  // its size and mode, so did a file made at the name of one unlinked while still open, and
  // RENAME_EXCHANGE answered EINVAL after the disk had swapped them.
  const script = `import ctypes, os, stat, sys
m = sys.argv[1]
os.umask(0)
libc = ctypes.CDLL(None, use_errno=True)
def show(n):
    st = os.lstat(m + '/' + n)
    print(n, oct(st.st_mode), st.st_size)
def exchange(a, b):
    r = libc.renameat2(-100, (m + '/' + a).encode(), -100, (m + '/' + b).encode(), 2)
    print('exchange', a, b, 'ok' if r == 0 else os.strerror(ctypes.get_errno()))
fd = os.open(m + '/a', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b'x' * 5000)
os.unlink(m + '/a')
os.mknod(m + '/a', 0o600 | stat.S_IFIFO)
show('a')
fd2 = os.open(m + '/c', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
os.write(fd2, b'y' * 7000)
with open(m + '/n', 'wb') as f: f.write(b'new')
os.rename(m + '/n', m + '/c')
show('c')
os.close(fd); os.close(fd2)
held = os.open(m + '/g', os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.unlink(m + '/g')
fd = os.open(m + '/g', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b'n' * 190)
os.close(fd)
show('g')
os.close(held)
show('g')
fd = os.open(m + '/e', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b'z' * 6000)
with open(m + '/f', 'wb') as f: f.write(b'hello')
os.mkdir(m + '/d', 0o755)
exchange('e', 'f')
show('e'); show('f')
os.write(fd, b'z' * 1000)
show('f')
exchange('f', 'd')
show('d'); show('f')
print('fstat', os.fstat(fd).st_size)
os.close(fd)
show('d')
`;
  const disk = join(dir, 'disk');
  mkdirSync(disk);
  const want = sh('python3', ['-c', script, disk]);
  const got = sh('python3', ['-c', script, join(mnt, 'm')]);
  t.equal(want.code, 0, want.stderr);
  t.equal(got.code, 0, got.stderr);
  t.equal(got.stdout, want.stdout, 'the same answers as on the disk');
  t.match(want.stdout, /exchange f d ok/, 'the oracle did exchange');
});

t.test("a file held open for writing while another descriptor changes it shows the disk's exact times once that one closes", async (t) => {
  const { src, mnt } = await mountedEmpty(t);
  // A second writer's open used to start a new record of the name's live values, without the
  // first writer's descriptor: once the second closed, the first's file showed the values noted
  // last (fallocate's mtime in milliseconds), some hundred nanoseconds off the disk's. And a file
  // held open whose mtime was set ahead (utimens) showed that mtime as its ctime.
  const r = sh('python3', [
    '-c',
    `import os, sys
m, disk = sys.argv[1], sys.argv[2]
held = os.open(m + '/a', os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
for off in (38463, 100):
    fd = os.open(m + '/a', os.O_WRONLY)
    os.posix_fallocate(fd, off, 4214)
    os.close(fd)
    os.listdir(m)
    got, want = os.lstat(m + '/a'), os.lstat(disk + '/a')
    print(got.st_mtime_ns == want.st_mtime_ns, got.st_size == want.st_size, os.fstat(held).st_mtime_ns == want.st_mtime_ns)
os.close(held)
with open(m + '/t', 'wb') as f: f.write(b'x' * 100)
os.utime(m + '/t', ns=(1_400_000_000_000_000_000, 2_099_999_994_330_756_688))
held = os.open(m + '/t', os.O_RDWR)
with open(m + '/t', 'rb') as f: f.read()
got, want = os.lstat(m + '/t'), os.lstat(disk + '/t')
print(got.st_ctime_ns == want.st_ctime_ns, got.st_mtime_ns == want.st_mtime_ns, os.fstat(held).st_ctime_ns == want.st_ctime_ns)
os.close(held)
`,
    join(mnt, 'm'),
    src,
  ]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'True True True\nTrue True True\nTrue True True\n', 'mtime and size as the disk has them, by name and through the held descriptor');
});
