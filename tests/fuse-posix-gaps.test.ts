import t from 'tap';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';

// Gaps left by the first POSIX pass (issue 16): what a listing shows of entries only a scan
// has seen, and inode numbers that must not move when a hard link comes or goes.

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
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'm', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
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
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'm', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
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
