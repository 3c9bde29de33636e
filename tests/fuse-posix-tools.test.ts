import t, { type Test } from 'tap';
import { chmodSync, chownSync, linkSync, mkdirSync, symlinkSync, utimesSync, writeFileSync, lutimesSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';
import { compareSnaps, PosixOps } from './helpers/posix-ops';

// The tools people copy and back up with, run into a local location through the mount and
// into a real directory of the same disk: the results must have the same whole lstat (modes,
// owners, link counts, sizes, contents) and exactly the times the tools set.

/** A tree with what those tools carry over: odd modes, other owners, old times, links. */
function sourceTree(root: string): void {
  mkdirSync(join(root, 'd/e'), { recursive: true });
  writeFileSync(join(root, 'plain.txt'), 'hello\n');
  writeFileSync(join(root, 'd/exec.sh'), '#!/bin/sh\necho hi\n');
  writeFileSync(join(root, 'd/e/big.bin'), Buffer.alloc(300_000, 7));
  chmodSync(join(root, 'd/exec.sh'), 0o4750);
  chmodSync(join(root, 'd/e'), 0o2770);
  chownSync(join(root, 'plain.txt'), 1234, 5678);
  chownSync(join(root, 'd/exec.sh'), 4321, 0);
  linkSync(join(root, 'plain.txt'), join(root, 'd/hard.txt'));
  symlinkSync('../plain.txt', join(root, 'd/link'));
  lutimesSync(join(root, 'd/link'), 1_100_000_000.25, 1_200_000_000.5);
  utimesSync(join(root, 'plain.txt'), 1_300_000_000.123456, 1_400_000_000.654321);
  utimesSync(join(root, 'd/exec.sh'), 1_350_000_000, 1_450_000_000);
  utimesSync(join(root, 'd/e/big.bin'), 1_360_000_000, 1_460_000_000);
  for (const d of ['d/e', 'd', '']) utimesSync(join(root, d), 1_000_000_000 + d.length, 1_500_000_000 + d.length);
}

/** Special files those tools carry over too (cp -a, rsync -a's -D, tar): a FIFO, a socket, devices. */
function specialFiles(t: Test, root: string): void {
  const make = (args: string[]) => t.equal(sh(args[0], args.slice(1)).code, 0, args.join(' '));
  make(['mkfifo', '-m', '0640', join(root, 'd/pipe')]);
  make(['mknod', '-m', '0600', join(root, 'd/e/null'), 'c', '1', '3']);
  make(['mknod', '-m', '0660', join(root, 'blk'), 'b', '7', '300']);
  make(['python3', '-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(join(root, 'sock'))})`]);
  chownSync(join(root, 'd/pipe'), 1234, 5678);
  utimesSync(join(root, 'd/pipe'), 1_310_000_000, 1_410_000_000);
  utimesSync(join(root, 'blk'), 1_320_000_000, 1_420_000_000);
  // The directories' own times again (the new names changed them).
  for (const d of ['d/e', 'd', '']) utimesSync(join(root, d), 1_000_000_000 + d.length, 1_500_000_000 + d.length);
}

t.test('cp -a, cp -p, rsync -a (twice), tar x and git give the same tree through the mount as on the disk', async (t) => {
  const { mnt, oracle } = await mountWithOracle(t, 'm', [], ['--allow-other']);
  const src = join(tempDir(t), 'tree');
  mkdirSync(src);
  sourceTree(src);
  specialFiles(t, src);
  const tarball = join(tempDir(t), 'tree.tar');
  t.equal(sh('tar', ['-cf', tarball, '-C', src, '.']).code, 0, 'tarball made');
  const onMount = new PosixOps(join(mnt, 'm'));
  const onDisk = new PosixOps(oracle);
  t.teardown(() => {
    onMount.close();
    onDisk.close();
  });
  const tools: [string, (dst: string) => string[][]][] = [
    ['cp-a', (dst) => [['cp', '-a', `${src}/.`, dst]]],
    ['cp-p', (dst) => [['cp', '-p', join(src, 'plain.txt'), join(dst, 'plain.txt')]]],
    ['rsync', (dst) => [['rsync', '-aH', `${src}/`, `${dst}/`]]],
    ['tar', (dst) => [['tar', '-xpf', tarball, '-C', dst]]],
  ];
  for (const [name, cmds] of tools) {
    for (const root of [join(mnt, 'm'), oracle]) {
      mkdirSync(join(root, name));
      for (const c of cmds(join(root, name))) {
        const r = sh(c[0], c.slice(1));
        t.equal(r.code, 0, `${name} into ${root === oracle ? 'the disk' : 'the mount'}: ${r.stderr}`);
      }
    }
    const snap = await onMount.snap(name);
    const diff = compareSnaps(snap, await onDisk.snap(name), {}, {});
    t.equal(diff, undefined, `${name}: the same whole lstat and exactly the times set`);
    if (name !== 'cp-p') {
      t.same(
        [snap['d/pipe']?.type, snap['d/e/null']?.type, snap['d/e/null']?.rdev, snap['blk']?.type, snap['sock']?.type ?? 'none'],
        [0o010000, 0o020000, 259, 0o060000, name === 'tar' ? 'none' : 0o140000],
        `${name}: the FIFO and the devices (and the socket, but tar skips those) came through the mount`,
      );
    }
  }
  // A second rsync finds nothing to copy (times and sizes kept exactly).
  const again = sh('rsync', ['-aH', '--itemize-changes', `${src}/`, `${join(mnt, 'm', 'rsync')}/`]);
  t.equal(again.code, 0);
  t.equal(again.stdout.trim(), '', 'the second rsync -a copies nothing');

  // touch -a / -m with explicit times: only that time changes, exactly.
  const f = join(mnt, 'm', 'cp-p', 'plain.txt');
  t.equal(sh('touch', ['-a', '-d', '@1500000000.111111111', f]).code, 0);
  t.equal(sh('touch', ['-m', '-d', '@1600000000.222222222', f]).code, 0);
  for (const p of [f, join(mnt, '..', 'src', 'cp-p', 'plain.txt')]) {
    t.equal(
      sh('stat', ['-c', '%.9X %.9Y', p]).stdout.trim(),
      '1500000000.111111111 1600000000.222222222',
      `touch -a/-m kept each time to the nanosecond (${p.includes('/src/') ? 'disk' : 'mount'})`,
    );
  }
  // python's os.utime (floats)
  t.equal(
    sh('python3', ['-c', `import os; os.utime(${JSON.stringify(f)}, (1.90e9, 1.95e9)); s=os.stat(${JSON.stringify(f)}); print(s.st_atime, s.st_mtime)`]).stdout.trim(),
    '1900000000.0 1950000000.0',
    'os.utime keeps both times',
  );
});

// rsync -a into a location's root sets that folder's times and mode last: they answered EBUSY
// (a location's root was only ever a name to protect), and rsync exited 23.
t.test("rsync -a into a location's root: exit 0, and the folder itself gets the times and mode", async (t) => {
  const { mnt, src: folder } = await mountWithOracle(t, 'm');
  const src = join(tempDir(t), 'tree');
  mkdirSync(src);
  sourceTree(src);
  chmodSync(src, 0o750);
  utimesSync(src, 1_100_000_000, 1_200_000_000.5);
  const root = join(mnt, 'm');
  const r = sh('rsync', ['-a', `${src}/`, `${root}/`]);
  t.equal(r.code, 0, `rsync -a exits 0: ${r.stderr}`);
  const want = sh('stat', ['-c', '%a %.9Y', src]).stdout.trim();
  t.equal(sh('stat', ['-c', '%a %.9Y', root]).stdout.trim(), want, "the location's root through the mount: the source folder's mode and mtime");
  t.equal(sh('stat', ['-c', '%a %.9Y', folder]).stdout.trim(), want, 'and the folder on the disk');
  const again = sh('rsync', ['-a', '--itemize-changes', `${src}/`, `${root}/`]);
  t.same([again.code, again.stdout.trim()], [0, ''], 'a second rsync -a copies and changes nothing');
  t.equal(sh('chmod', ['755', root]).code, 0, "chmod of a location's root");
  t.equal(sh('stat', ['-c', '%a', folder]).stdout.trim(), '755', 'reaches the folder');
});

t.test('git clone and commit in the mount: a clean status, the same files as on the disk', async (t) => {
  const { mnt, oracle } = await mountWithOracle(t, 'm');
  const repo = join(tempDir(t), 'repo');
  mkdirSync(repo);
  sourceTree(repo);
  const git = (cwd: string, ...args: string[]) => sh('git', ['-c', 'user.name=t', '-c', 'user.email=t@e', '-c', 'safe.directory=*', ...args], { cwd });
  t.equal(git(repo, 'init', '-q').code, 0);
  t.equal(git(repo, 'add', '-A').code, 0);
  t.equal(git(repo, 'commit', '-qm', 'one').code, 0);
  for (const root of [join(mnt, 'm'), oracle]) {
    const r = git(root, 'clone', '-q', repo, 'clone');
    t.equal(r.code, 0, `clone: ${r.stderr}`);
    writeFileSync(join(root, 'clone', 'new.txt'), 'new\n');
    t.equal(git(join(root, 'clone'), 'add', 'new.txt').code, 0);
    t.equal(git(join(root, 'clone'), 'commit', '-qm', 'two').code, 0);
    t.equal(git(join(root, 'clone'), 'status', '--porcelain').stdout, '', 'clean after commit');
    t.equal(git(join(root, 'clone'), 'fsck', '--no-progress').code, 0, 'fsck');
  }
  const onMount = new PosixOps(join(mnt, 'm'));
  const onDisk = new PosixOps(oracle);
  t.teardown(() => {
    onMount.close();
    onDisk.close();
  });
  const strip = (s: Record<string, import('./helpers/posix-ops').SnapEntry>) => Object.fromEntries(Object.entries(s).filter(([p]) => !p.startsWith('.git')));
  t.equal(compareSnaps(strip(await onMount.snap('clone')), strip(await onDisk.snap('clone')), {}, {}), undefined, 'the checked-out files match');
});
