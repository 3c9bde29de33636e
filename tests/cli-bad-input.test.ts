import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, vdfs, vdfsOk, VDFS_BIN, type RunResult } from './helpers/cli';
import { indexProblems } from './helpers/index-check';

interface Summary {
  files: number;
  dirs: number;
  bytes: number;
  hashed: number;
  unchanged: number;
  errors: number;
  seconds: number;
}
interface Item {
  name: string;
  type: string;
  size: number;
  hash: string | null;
}

/** Runs vdfs as `nobody` (root reads everything, so unreadable files need another user). */
function vdfsAsNobody(home: string, args: string[]): RunResult {
  const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, VDFS_BIN, '--home', home, ...args], {
    encoding: 'buffer',
    timeout: 120_000,
    env: { ...process.env, VDFS_HOME: '' },
  });
  if (r.error) throw r.error;
  const stdout = r.stdout.toString('utf8');
  return { code: r.status ?? -1, stdout, stderr: r.stderr.toString('utf8'), json: <T>() => JSON.parse(stdout) as T };
}

function names(home: string, vpath: string): string[] {
  return vdfsOk(home, ['ls', vpath, '--json'])
    .json<Item[]>()
    .map((i) => i.name)
    .sort();
}

t.test('--version prints the package version and exits 0, with or without a home', async (t) => {
  const want = (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  for (const flag of ['--version', '-V']) {
    const r = vdfs(join(tempDir(t), 'never-made'), [flag]);
    t.same([r.code, r.stdout.trim(), r.stderr], [0, want, ''], flag);
  }
});

t.test('a home that was never initialised: exit 3 and the command to run', async (t) => {
  const home = join(tempDir(t), 'nohome');
  for (const args of [['ls', '/'], ['scan'], ['status'], ['location', 'ls'], ['location', 'add', 'x', '/tmp'], ['dupes', '--json'], ['config', 'get']]) {
    const r = vdfs(home, args);
    t.equal(r.code, 3, `${args.join(' ')}: exit 3 (ENOENT)`);
    t.match(r.stderr, /no vdfs home at .*run `vdfs init`/, `${args.join(' ')}: says to run vdfs init`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
    t.equal(r.stdout, '');
  }
  t.notOk(existsSync(home), 'nothing was created');
});

t.test('location add: missing path, not a directory, added twice, bad name, relative path', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'file'), 'x');
  vdfsOk(home, ['init']);
  const cases: [string[], number, RegExp][] = [
    [['location', 'add', 'a', join(dir, 'missing')], 3, /does not exist/],
    [['location', 'add', 'a', join(dir, 'file')], 3, /is not a directory/],
    [['location', 'add', 'bad/name', join(dir, 'src')], 2, /location name .* is invalid/],
    [['location', 'add', '.vdfs', join(dir, 'src')], 2, /is invalid/],
    [['location', 'add', 'a', 'ftp://example.com/x'], 2, /cannot use .* as a location/],
  ];
  for (const [args, code, msg] of cases) {
    const r = vdfs(home, args);
    t.equal(r.code, code, `${args.slice(2).join(' ')}: exit ${code}`);
    t.match(r.stderr, msg);
  }
  vdfsOk(home, ['location', 'add', 'a', join(dir, 'src')]);
  let r = vdfs(home, ['location', 'add', 'a', join(dir, 'src')]);
  t.equal(r.code, 4, 'same name, same path: exit 4 (EEXIST)');
  t.match(r.stderr, /a location named "a" already exists/);
  r = vdfs(home, ['location', 'add', 'b', join(dir, 'src') + '/']);
  t.equal(r.code, 4, 'same path under another name: exit 4');
  t.match(r.stderr, /is already the location "a"/);
  // A relative path is taken from the current directory, like every shell tool.
  mkdirSync(join(dir, 'rel'));
  const rr = spawnSync(process.execPath, [VDFS_BIN, '--home', home, 'location', 'add', 'rel', './rel', '--json'], { cwd: dir, encoding: 'utf8' });
  t.equal(rr.status, 0, rr.stderr);
  t.equal(JSON.parse(rr.stdout).uri, join(dir, 'rel'));
  t.same(
    vdfsOk(home, ['location', 'ls', '--json'])
      .json<{ name: string }[]>()
      .map((l) => l.name),
    ['a', 'rel'],
    'only the good ones were added',
  );
  t.same(indexProblems(home), []);
});

t.test('ignore rules: --ignore adds gitignore rules; the defaults ignore only OS junk', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const [src, src2] = [join(dir, 'src'), join(dir, 'src2')];
  for (const root of [src, src2]) {
    for (const d of ['sub', 'build/out', '.Trash-1000', 'lost+found', 'node_modules', '.git']) mkdirSync(join(root, d), { recursive: true });
    for (const f of [
      'a.tmp',
      'b.txt',
      'sub/c.tmp',
      'sub/d.txt',
      'build/out/e.o',
      '.DS_Store',
      'sub/.DS_Store',
      '._b.txt',
      'Thumbs.db',
      '.Trash-1000/old.txt',
      'lost+found/#123',
      'node_modules/m.js',
      '.git/HEAD',
      '.hidden',
      'tmp.txt',
    ])
      writeFileSync(join(root, f), f);
  }
  vdfsOk(home, ['init']);
  // The option comes first on purpose: it must not swallow NAME and URI.
  vdfsOk(home, ['location', 'add', '--ignore', '*.tmp', '--ignore', 'build/', 'main', src]);
  vdfsOk(home, ['location', 'add', 'plain', src2]);
  const s = vdfsOk(home, ['scan', 'main', '--json']).json<Summary>();
  t.equal(s.errors, 0);
  t.same(names(home, '/main'), ['.git', '.hidden', 'b.txt', 'node_modules', 'sub', 'tmp.txt'], 'custom and default rules applied');
  t.same(names(home, '/main/sub'), ['d.txt']);
  vdfsOk(home, ['scan', 'plain']);
  t.same(names(home, '/plain'), ['.git', '.hidden', 'a.tmp', 'b.txt', 'build', 'node_modules', 'sub', 'tmp.txt'], 'defaults only: OS junk');
  t.same(names(home, '/plain/sub'), ['c.tmp', 'd.txt']);
  t.same(indexProblems(home), []);
});

t.test('symlinks are not followed: loops, links to parents and to /', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'd', 'f.txt'), 'f');
  symlinkSync('loop-b', join(src, 'loop-a'));
  symlinkSync('loop-a', join(src, 'loop-b'));
  symlinkSync('..', join(src, 'd', 'up'));
  symlinkSync('.', join(src, 'self'));
  symlinkSync('/', join(src, 'root'));
  symlinkSync('d/f.txt', join(src, 'line\nbreak'));
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'main', src]);
  const s = vdfsOk(home, ['scan', '--json']).json<Summary>();
  t.same([s.files, s.dirs, s.errors], [1, 2, 0], 'one file, two dirs, no errors: nothing followed');
  const items = vdfsOk(home, ['ls', '/main', '--json']).json<Item[]>();
  t.same(
    items
      .filter((i) => i.type === 'symlink')
      .map((i) => i.name)
      .sort(),
    ['line\nbreak', 'loop-a', 'loop-b', 'root', 'self'],
  );
  t.equal(
    vdfsOk(home, ['ls', '/main/d', '--json'])
      .json<Item[]>()
      .find((i) => i.name === 'up')?.type,
    'symlink',
  );
  const human = vdfsOk(home, ['ls', '/main']).stdout;
  t.match(human, /"line\\nbreak"/, 'a newline in a name is shown escaped in human output');
  t.equal(human.trim().split('\n').length, 6, 'one line per entry');
  t.same(indexProblems(home), []);
});

t.test('names that are not valid UTF-8 are reported and counted, never renamed', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'good.txt'), 'good');
  const srcB = Buffer.from(src + '/');
  writeFileSync(Buffer.concat([srcB, Buffer.from([0x66, 0xff, 0x2e, 0x74, 0x78, 0x74])]), 'bad name'); // f\xff.txt
  const badDir = Buffer.concat([srcB, Buffer.from([0x64, 0xe9])]); // latin-1 "dé"
  mkdirSync(badDir);
  writeFileSync(Buffer.concat([badDir, Buffer.from('/inside.txt')]), 'inside');
  writeFileSync(join(src, 'Ünïcödé.txt'), 'valid unicode');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'main', src]);
  const r = vdfs(home, ['scan', '--json']);
  t.equal(r.code, 1, 'exit 1: scanned with problems');
  const s = r.json<Summary>();
  t.equal(s.errors, 2, 'both bad names counted');
  t.equal(s.files, 2, 'the good files are indexed');
  t.match(r.stderr, /main\/f\\xff\.txt: name is not valid UTF-8/, 'the file is named with its byte escaped');
  t.match(r.stderr, /main\/d\\xe9: name is not valid UTF-8/, 'so is the directory');
  t.same(names(home, '/main'), ['good.txt', 'Ünïcödé.txt'], 'nothing renamed into the index (no U+FFFD)');
  t.same(indexProblems(home), []);
});

t.test('a location whose path vanishes or stops being a directory', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const other = join(dir, 'other');
  mkdirSync(src);
  mkdirSync(other);
  writeFileSync(join(src, 'kept.txt'), 'kept');
  writeFileSync(join(other, 'o.txt'), 'o');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'main', src]);
  vdfsOk(home, ['location', 'add', 'other', other]);
  vdfsOk(home, ['scan']);
  renameSync(src, join(dir, 'unplugged'));
  writeFileSync(join(other, 'o2.txt'), 'o2');
  const r = vdfs(home, ['scan', '--json']);
  t.equal(r.code, 6, 'exit 6 (EHOSTDOWN)');
  t.match(r.stderr, /main: .*is not reachable.*last indexed tree stays visible/);
  const s = r.json<Summary>();
  t.equal(s.hashed, 1, 'the other location was still scanned');
  t.equal(s.errors, 1);
  t.same(
    vdfsOk(home, ['location', 'ls', '--json'])
      .json<{ name: string; online: boolean }[]>()
      .map((l) => [l.name, l.online]),
    [
      ['main', false],
      ['other', true],
    ],
  );
  t.same(names(home, '/main'), ['kept.txt'], 'the last indexed tree stays');
  writeFileSync(src, 'now a file');
  const r2 = vdfs(home, ['scan', 'main']);
  t.equal(r2.code, 3, 'exit 3 (ENOTDIR)');
  t.match(r2.stderr, /is not a directory/);
  rmSync(src);
  renameSync(join(dir, 'unplugged'), src);
  vdfsOk(home, ['scan', 'main']);
  t.equal(vdfsOk(home, ['location', 'ls', '--json']).json<{ online: boolean }[]>()[0].online, true, 'online again');
  t.same(indexProblems(home), []);
});

t.test('unreadable files and directories (scanned as nobody): reported, counted, index kept', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  mkdirSync(join(src, 'private'), { recursive: true, mode: 0o755 });
  chmodSync(src, 0o755);
  writeFileSync(join(src, 'ok.txt'), 'readable', { mode: 0o644 });
  writeFileSync(join(src, 'secret.txt'), 'secret', { mode: 0o600 });
  writeFileSync(join(src, 'private', 'x.txt'), 'x', { mode: 0o644 });
  mkdirSync(home);
  chownSync(home, 65534, 65534);
  t.equal(vdfsAsNobody(home, ['init']).code, 0, 'init as nobody');
  t.equal(vdfsAsNobody(home, ['location', 'add', 'main', src]).code, 0);
  let r = vdfsAsNobody(home, ['scan', '--json']);
  t.equal(r.code, 1, 'exit 1: scanned with problems');
  t.equal(r.json<Summary>().errors, 1);
  t.match(r.stderr, /main\/secret\.txt: .*permission denied/i);
  const secret = vdfsAsNobody(home, ['stat', '/main/secret.txt', '--json']).json<{ size: number; hash: string | null }>();
  t.same([secret.size, secret.hash], [6, null], 'listed with its size, hash unknown');
  t.equal(vdfsAsNobody(home, ['stat', '/main/ok.txt', '--json']).json<{ hash: string }>().hash, b3sum(join(src, 'ok.txt')));
  t.equal(vdfsAsNobody(home, ['stat', '/main/private/x.txt', '--json']).code, 0, 'indexed while readable');

  chmodSync(join(src, 'private'), 0o700);
  r = vdfsAsNobody(home, ['scan', '--json']);
  t.equal(r.code, 1);
  t.equal(r.json<Summary>().errors, 2, 'the secret file and the private directory');
  t.match(r.stderr, /main\/private: cannot list directory: .*permission denied/i);
  t.equal(vdfsAsNobody(home, ['stat', '/main/private/x.txt', '--json']).code, 0, 'an unreadable directory is not an empty one: its entries stay');

  chmodSync(join(src, 'private'), 0o755);
  chmodSync(join(src, 'secret.txt'), 0o644);
  r = vdfsAsNobody(home, ['scan', '--json']);
  t.equal(r.code, 0, 'clean once readable');
  t.equal(r.json<Summary>().hashed, 1, 'the secret file is hashed now');
  t.equal(vdfsAsNobody(home, ['stat', '/main/secret.txt', '--json']).json<{ hash: string }>().hash, b3sum(join(src, 'secret.txt')));
  t.same(indexProblems(home), []);
});

t.test('two scans of one home at once: the second gets EBUSY with the holder pid; a dead holder is taken over', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'sparse.bin'), '');
  truncateSync(join(src, 'sparse.bin'), 16 * 1024 ** 3); // 16 GiB of holes: hashing takes seconds, disk takes nothing
  writeFileSync(join(src, 'small.txt'), 'small');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'main', src]);
  const first = spawn(process.execPath, [VDFS_BIN, '--home', home, 'scan'], { stdio: 'ignore' });
  const lock = join(home, 'locks', 'scan.lock');
  const until = Date.now() + 20_000;
  while (!existsSync(lock) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.ok(existsSync(lock), 'the first scan holds the lock');
  const r = vdfs(home, ['scan', '--json']);
  t.equal(r.code, 5, 'exit 5 (EBUSY)');
  t.match(r.stderr, new RegExp(`another scan is running on this home \\(process ${first.pid}\\b`), 'names the holder pid');
  t.equal(r.stdout, '');
  const exited = new Promise((res) => first.on('exit', res));
  first.kill('SIGKILL');
  await exited;
  t.equal(readFileSync(lock, 'utf8').split('\n')[0], String(first.pid), 'a killed scan leaves its lock');
  rmSync(join(src, 'sparse.bin'));
  const s = vdfsOk(home, ['scan', '--json']).json<Summary>();
  t.equal(s.files, 1, 'the stale lock was taken over');
  t.notOk(existsSync(lock), 'and released');
  t.same(indexProblems(home), [], 'a scan killed mid-way leaves a consistent index');
});
