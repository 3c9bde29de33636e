import t from 'tap';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { b3sum, tempDir, until, vdfs, vdfsOk } from './helpers/cli';
import { mountWithOracle, sh, startMount, indexedLocation } from './helpers/mount';

/** The same shell script run in the mount and in a plain directory must leave identical trees. */
const SCRIPT = `
set -e
mkdir -p tree/sub/deeper
printf 'hello world\\n' > tree/hello.txt
head -c 3000000 /dev/urandom > tree/sub/random.bin
cp -a tree copy
rsync -a tree/ synced/
mv copy/hello.txt copy/renamed.txt
printf 'XYZ' | dd of=tree/hello.txt bs=1 seek=6 conv=notrunc status=none
truncate -s 5 tree/sub/random.bin
truncate -s 100 copy/renamed.txt
ln -s hello.txt tree/link
rm -r synced/sub
mkdir repo && cd repo && git init -q && git config user.email t@t && git config user.name t
printf 'v1\\n' > file && git add file && git commit -qm one
printf 'v2\\n' >> file && git commit -qam two
git log --oneline | wc -l > ../commits.txt
`;

/** b3sum of every file under a dir (sorted), excluding .git internals that embed times. */
function treeHashes(root: string): string {
  const r = sh('bash', ['-c', `cd ${JSON.stringify(root)} && find . -path ./repo/.git -prune -o -type f -print0 | sort -z | xargs -0 b3sum`]);
  return r.stdout;
}

function listing(root: string): string {
  return sh('bash', ['-c', `cd ${JSON.stringify(root)} && find . -path ./repo/.git -prune -o -type d -printf '%y %p\\n' -o -printf '%y %s %p %l\\n' | sort`]).stdout;
}

t.test('cp -a, rsync -a, mv, rm -r, in-place writes, truncate, symlinks and git behave as on a real directory', async (t) => {
  const { home, src, oracle, mnt } = await mountWithOracle(t, 'w');

  const inMount = sh('bash', ['-c', SCRIPT], { cwd: join(mnt, 'w'), timeoutMs: 120_000 });
  t.equal(inMount.code, 0, `script on the mount: ${inMount.stderr}`);
  const inOracle = sh('bash', ['-c', SCRIPT], { cwd: oracle, timeoutMs: 120_000 });
  t.equal(inOracle.code, 0);
  t.equal(listing(join(mnt, 'w')), listing(oracle), 'same tree shape, file sizes and link targets as the real directory (directory sizes are filesystem-specific)');
  t.equal(listing(src), listing(oracle), 'and the backing directory got it');
  t.equal(readFileSync(join(src, 'tree/hello.txt'), 'utf8'), 'hello XYZld\n', 'in-place write at an offset');
  t.equal(readFileSync(join(src, 'commits.txt'), 'utf8').trim(), '2', 'git committed twice');
  t.equal(sh('git', ['-C', join(mnt, 'w', 'repo'), 'fsck', '--no-progress']).code, 0, 'git fsck is clean through the mount');
  // content identical except random.bin and the git repo, which differ by design (random data / times)
  const strip = (s: string) =>
    s
      .split('\n')
      .filter((l) => !l.includes('random.bin') && !l.includes('./repo/'))
      .join('\n');
  t.equal(strip(treeHashes(join(mnt, 'w'))).replace(/ +\.\//g, ' '), strip(treeHashes(oracle)).replace(/ +\.\//g, ' '), 'same content');

  // The index follows: after close the new hash is shown within a few seconds.
  let hash = '';
  for (let i = 0; i < 50 && hash !== b3sum(join(src, 'tree/hello.txt')); i++) {
    hash = vdfs(home, ['stat', '/w/tree/hello.txt', '--json']).json<{ hash: string }>().hash;
    if (hash !== b3sum(join(src, 'tree/hello.txt'))) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(hash, b3sum(join(src, 'tree/hello.txt')), 'vdfs stat shows the new hash');
});

t.test('read-only locations answer EROFS; cross-location rename is EXDEV (mv falls back to copy)', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const ro = join(dir, 'ro');
  const rw = join(dir, 'rw');
  const rw2 = join(dir, 'rw2');
  const mnt = join(dir, 'mnt');
  mkdirSync(ro);
  mkdirSync(rw);
  mkdirSync(rw2);
  writeFileSync(join(ro, 'keep.txt'), 'original');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'ro', ro, '--readonly']);
  vdfsOk(home, ['location', 'add', 'rw', rw]);
  vdfsOk(home, ['location', 'add', 'rw2', rw2]);
  vdfsOk(home, ['scan']);
  const roFileMode = statSync(join(ro, 'keep.txt')).mode & 0o777;
  const roRoot = [statSync(ro).mode & 0o777, statSync(ro).mtimeMs];
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  for (const cmd of [
    `echo x > ${mnt}/ro/new.txt`,
    `echo x >> ${mnt}/ro/keep.txt`,
    `rm ${mnt}/ro/keep.txt`,
    `mkdir ${mnt}/ro/d`,
    `mv ${mnt}/ro/keep.txt ${mnt}/ro/moved.txt`,
    `touch -d 2001-01-01 ${mnt}/ro/keep.txt`,
    `chmod 600 ${mnt}/ro/keep.txt`,
    `chmod 700 ${mnt}/ro`, // the location's root is its folder: read-only too
    `touch -d 2001-01-01 ${mnt}/ro`,
  ]) {
    const r = sh('bash', ['-c', cmd]);
    t.equal(r.code, 1, `${cmd}: exits 1`);
    t.match(r.stderr, /Read-only file system/, `${cmd}: EROFS`);
  }
  t.equal(readFileSync(join(ro, 'keep.txt'), 'utf8'), 'original', 'nothing changed');
  t.equal(statSync(join(ro, 'keep.txt')).mode & 0o777, roFileMode, 'the file kept its mode');
  t.same([statSync(ro).mode & 0o777, statSync(ro).mtimeMs], roRoot, 'the folder kept its mode and mtime');
  // Written through the mount: the kernel learns the name from us (no rescan, no stale name cache to wait out).
  writeFileSync(join(mnt, 'rw', 'a.txt'), 'move me');
  // rename(2) itself across two writable locations: exactly EXDEV, and nothing moved.
  const rename = (from: string, to: string) =>
    sh('python3', [
      '-c',
      'import errno, os, sys\ntry:\n  os.rename(sys.argv[1], sys.argv[2]); print("ok")\nexcept OSError as e:\n  print(errno.errorcode[e.errno])',
      from,
      to,
    ]).stdout.trim();
  t.equal(rename(join(mnt, 'rw', 'a.txt'), join(mnt, 'rw2', 'a.txt')), 'EXDEV', 'rename(2) from one location to another: EXDEV');
  t.equal(readFileSync(join(rw, 'a.txt'), 'utf8'), 'move me', 'the source is untouched');
  t.notOk(existsSync(join(rw2, 'a.txt')), 'nothing arrived at the target');
  t.equal(rename(join(mnt, 'rw', 'a.txt'), join(mnt, 'ro', 'a.txt')), 'EROFS', 'rename(2) into a read-only location: EROFS (checked before EXDEV, so mv reports it)');
  // mv falls back to copy + unlink on EXDEV.
  const mv = sh('mv', [join(mnt, 'rw', 'a.txt'), join(mnt, 'rw2', 'a.txt')]);
  t.equal(mv.code, 0, 'mv across locations works (copy after EXDEV)');
  t.equal(readFileSync(join(rw2, 'a.txt'), 'utf8'), 'move me', 'the file is in the other location');
  t.notOk(existsSync(join(rw, 'a.txt')), 'and gone from the first');
  const mvRo = sh('mv', [join(mnt, 'rw2', 'a.txt'), join(mnt, 'ro', 'a.txt')]);
  t.equal(mvRo.code, 1, 'mv into a read-only location fails');
  t.match(mvRo.stderr, /Read-only file system/, 'with EROFS (its copy fallback is refused)');
  t.equal(readFileSync(join(rw2, 'a.txt'), 'utf8'), 'move me', 'and the file stays where it was');
  const mv2 = sh('bash', ['-c', `mkdir -p ${dir}/x && mv ${mnt}/rw2/a.txt ${dir}/x/ && cat ${dir}/x/a.txt`]);
  t.equal(mv2.stdout, 'move me', `mv out of the mount (EXDEV, then copy) works${mv2.stderr ? `: ${mv2.stderr}` : ''}`);
});

t.test('an fsynced file survives kill -9 and reads back after restart', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'd', src]);
  vdfsOk(home, ['scan']);
  const m1 = await startMount(home, mnt);
  t.teardown(() => m1.stop());
  const data = randomBytes(5 * 1024 * 1024);
  writeFileSync(join(dir, 'payload'), data);
  const r = sh('dd', [`if=${join(dir, 'payload')}`, `of=${join(mnt, 'd', 'durable.bin')}`, 'bs=1M', 'conv=fsync', 'status=none']);
  t.equal(r.code, 0, r.stderr);
  await m1.kill9();
  const m2 = await startMount(home, mnt);
  t.teardown(() => m2.stop());
  t.equal(sh('b3sum', ['--no-names', join(mnt, 'd', 'durable.bin')]).stdout.trim(), b3sum(join(dir, 'payload')), 'every acknowledged byte is there');
});

t.test('a flush while the file stays open (a dup closed) brings the index up to date; the close then adds the hash', async (t) => {
  const { home, mnt } = indexedLocation(t, 'd', {});
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const f = join(mnt, 'd', 'held.txt');
  // fd 3 stays open; closing its dup (fd 4) is a FLUSH without a RELEASE.
  const holder = spawn('sh', ['-c', 'exec 3>"$1"; printf hello >&3; exec 4>&3; exec 4>&-; echo flushed; read _', 'sh', f], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => holder.kill());
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
  // The index itself, read-only (`vdfs stat` would look at the disk file too).
  const db = new Database(join(home, 'index.db'), { readonly: true });
  t.teardown(() => db.close());
  const row = () => db.prepare("SELECT size, hex(hash) AS hash FROM entries WHERE name = 'held.txt'").get() as { size: number; hash: string | null } | undefined;
  t.ok(await until(() => row()?.size === 5, 10_000), 'the index has the flushed size while the file is still open');
  t.equal(row()?.hash, '', 'no hash yet: the file is still open for writing (hex of NULL)');
  holder.stdin.end();
  await new Promise((resolve) => holder.once('exit', resolve));
  t.ok(await until(() => row()?.hash?.toLowerCase() === b3sum(f), 10_000), 'the close adds the hash');
});

t.test('files unpacked by tar x and closed survive kill -9 right after, and get their hashes back', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  const tree = join(dir, 'tree');
  mkdirSync(src);
  const names: string[] = [];
  for (let d = 0; d < 4; d++) {
    mkdirSync(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < 50; f++) {
      writeFileSync(join(tree, `d${d}`, `f${f}`), randomBytes(100 + (((d * 50 + f) * 37) % 5000)));
      names.push(`d${d}/f${f}`);
    }
  }
  const tarball = join(dir, 'tree.tar');
  t.equal(sh('tar', ['cf', tarball, '-C', tree, '.']).code, 0);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'd', src]);
  vdfsOk(home, ['scan']);
  const m1 = await startMount(home, mnt);
  t.teardown(() => m1.stop());
  mkdirSync(join(mnt, 'd', 'x'));
  const r = sh('tar', ['xf', tarball, '-C', join(mnt, 'd', 'x')]);
  t.equal(r.code, 0, r.stderr);
  // Killed as soon as tar has closed its last file: hashes may not be committed yet.
  await m1.kill9();
  const m2 = await startMount(home, mnt);
  t.teardown(() => m2.stop());
  const want = new Map(names.map((n) => [n, b3sum(join(tree, n))]));
  const bad = names.filter((n) => sh('b3sum', ['--no-names', join(mnt, 'd', 'x', n)]).stdout.trim() !== want.get(n));
  t.same(bad, [], `every closed file is there with its bytes (${names.length})`);
  const hashOf = (n: string) => sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', join(mnt, 'd', 'x', n)]).stdout.trim();
  t.ok(await until(() => names.every((n) => hashOf(n) === want.get(n)), 60_000), 'every file gets its hash (the start-up rescan computes the ones not committed)');
});

t.test("vdfs's extended attributes are read by name, never listed or copied out", async (t) => {
  const { dir, home, src, mnt } = indexedLocation(t, 'd', { 'f.txt': 'indexed\n' });
  const out = join(dir, 'out');
  mkdirSync(out);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const f = join(mnt, 'd', 'f.txt');
  t.equal(sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', f]).stdout, b3sum(join(src, 'f.txt')), 'read by name');
  const dump = sh('getfattr', ['-d', '-m', '-', f]);
  t.same([dump.code, dump.stdout], [0, ''], 'getfattr -d lists nothing');
  t.equal(sh('getfattr', ['-d', '-m', '-', mnt]).stdout, '', 'nor on the root');
  t.equal(sh('cp', ['-a', f, join(out, 'copy.txt')]).code, 0, 'cp -a out of the mount');
  t.equal(sh('getfattr', ['-d', '-m', '-', join(out, 'copy.txt')]).stdout, '', 'the copy carries no user.vdfs.* attribute');
  // Files written just now: their hashes land while mv (libattr) lists and reads attributes.
  for (let i = 0; i < 20; i++) {
    const r = sh('bash', ['-c', `printf 'n${i}' > ${mnt}/d/n${i} && mv ${mnt}/d/n${i} ${out}/ && cat ${out}/n${i}`]);
    if (r.stdout !== `n${i}` || r.stderr) {
      t.fail(`mv of a fresh file out of the mount: ${r.stderr}`);
      return;
    }
  }
  t.pass('20 fresh files moved out of the mount intact');
});
