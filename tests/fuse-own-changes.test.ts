import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { b3sumMany, until } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';
import { dav } from './helpers/webdav';

// Changes made through the mount (unlink, rmdir, rename, chmod, utimes, chown) are changes the
// kernel made itself: it updates its own caches. They used to count as changes from outside,
// which started an invalidation sweep and made every folder listing the kernel kept stale, so
// `git status` listed all its folders again after each run (it creates and removes
// .git/index.lock) and `rsync -a` (a rename per file) kept sweeping.

const stats = (mnt: string) => JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as Record<string, number>;

// A write-back folder stages what is written and uploads it later: the close commits the staged
// copy, the upload its new version, and neither is news to the kernel either.
for (const mode of ['write-through', 'write-back'] as const)
  t.test(`changes made through the mount keep the listings the kernel holds of other folders (${mode})`, async (t) => {
    const { mnt, src } = await mountWithOracle(t, 'l', mode === 'write-back' ? ['--write-back'] : []);
    mkdirSync(join(src, 'photos'));
    for (let i = 0; i < 40; i++) writeFileSync(join(src, 'photos', `p${i}.jpg`), `photo ${i}`);
    mkdirSync(join(src, 'work'));
    const photos = join(mnt, 'l', 'photos');
    const work = join(mnt, 'l', 'work');
    const list = () => sh('ls', ['-l', photos]).stdout;
    // The files came from outside the mount: wait for the watcher's changes to be over.
    t.ok(await until(() => (list().match(/p\d+\.jpg/g) ?? []).length === 40, 15_000), 'the watcher indexed the 40 files');
    let settled = false;
    for (const end = Date.now() + 15_000; !settled && Date.now() < end;) {
      const c = stats(mnt).changes;
      await sleep(500);
      settled = stats(mnt).changes === c && !stats(mnt).sweepPending;
    }
    t.ok(settled, 'and settled (no index change for 500 ms)');
    const listed = list();
    t.match(listed, /p39\.jpg/, 'the folder is listed through the mount');
    const s0 = stats(mnt);
    t.equal(list(), listed, 'listed again');
    t.equal(stats(mnt)['op.readdirplus'] ?? 0, s0['op.readdirplus'] ?? 0, 'the second listing came from the kernel (no READDIRPLUS): the premise of what follows');
    // The watcher may race one of these ops and commit what it saw (a change from outside, rightly
    // swept): a round counts when the ops alone changed nothing. Before, every round moved `changes`.
    const rounds: string[] = [];
    for (let round = 0; round < 3; round++) {
      const before = stats(mnt);
      const f = join(work, `f${round}`);
      const steps: [string, string[]][] = [
        ['sh', ['-c', `echo hi > ${f}`]],
        ['chmod', ['600', f]],
        ['touch', ['-d', '2020-01-02 03:04:05', f]],
        ['chown', ['12345:23456', f]],
        ['mv', [f, `${f}.renamed`]],
        ['rm', [`${f}.renamed`]],
        ['mkdir', [`${f}.d`]],
        ['mv', [`${f}.d`, `${f}.e`]],
        ['rmdir', [`${f}.e`]],
      ];
      for (const [cmd, args] of steps) t.equal(sh(cmd, args).code, 0, `${cmd} ${args.join(' ')}`);
      t.equal(list(), listed, 'the other folder lists the same');
      const after = stats(mnt);
      const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
      rounds.push(`changes +${d('changes')}, sweeps +${d('sweeps')}, READDIRPLUS +${d('op.readdirplus')}`);
      if (d('changes') === 0 && d('op.readdirplus') === 0) break;
    }
    t.match(rounds[rounds.length - 1], /^changes \+0, sweeps \+0, READDIRPLUS \+0$/, `no change counted, no sweep, the listing kept (rounds: ${rounds.join('; ')})`);
    t.same(sh('ls', ['-A', work]).stdout, '', 'and the folder worked in is empty, as on the disk');
    t.same(sh('ls', ['-A', join(src, 'work')]).stdout, '', 'the disk agrees');
  });

t.test('a folder renamed through the mount: the other front end finds it at the new path at once', async (t) => {
  const { mnt, m } = await mountWithOracle(t, 'l', [], ['--webdav', '127.0.0.1:0']);
  const port = Number(/vdfs serving WebDAV at https?:\/\/[^\s/]+:(\d+)\//.exec(m.output())![1]);
  mkdirSync(join(mnt, 'l', 'a', 'sub'), { recursive: true });
  writeFileSync(join(mnt, 'l', 'a', 'sub', 'f'), 'bytes of f');
  // Both answers are cached by the daemon's resolver: the file found, and the miss.
  t.equal((await dav(port, 'GET', '/l/a/sub/f')).text, 'bytes of f', 'WebDAV reads the file');
  t.equal((await dav(port, 'GET', '/l/b/sub/f')).status, 404, 'nothing at the new path yet');
  t.equal(sh('mv', [join(mnt, 'l', 'a'), join(mnt, 'l', 'b')]).code, 0, 'the folder renamed through the mount');
  const moved = await dav(port, 'GET', '/l/b/sub/f');
  t.equal(moved.status, 200, 'found at the new path (no cached miss)');
  t.equal(moved.text, 'bytes of f', 'with its bytes');
  t.equal((await dav(port, 'GET', '/l/a/sub/f')).status, 404, 'gone from the old path (no cached entry)');
  t.equal(sh('mv', [join(mnt, 'l', 'b', 'sub', 'f'), join(mnt, 'l', 'b', 'sub', 'g')]).code, 0, 'the file renamed through the mount');
  t.equal((await dav(port, 'GET', '/l/b/sub/g')).text, 'bytes of f', 'found at its new name');
  t.equal((await dav(port, 'GET', '/l/b/sub/f')).status, 404, 'not at its old one');
  t.equal(sh('rm', [join(mnt, 'l', 'b', 'sub', 'g')]).code, 0, 'removed through the mount');
  t.equal((await dav(port, 'GET', '/l/b/sub/g')).status, 404, 'and gone for WebDAV at once');
  const listing = await dav(port, 'PROPFIND', '/l/b/sub/', { headers: { Depth: '1' } });
  t.equal(listing.status, 207, 'the folder is listed');
  t.notMatch(listing.text, /sub\/[fg]</, 'without either name');
});

// rsync -a closes each file under a temporary name and renames it at once: the hash computed at
// the close is still waiting for its grouped commit then, and follows the file to its new name.
t.test('files renamed right after they are written get their hashes at their new names', async (t) => {
  const { mnt, src } = await mountWithOracle(t, 'l');
  const dir = join(mnt, 'l', 'r');
  mkdirSync(dir);
  const n = 30;
  const script = `for i in $(seq ${n}); do head -c $((i * 997)) /dev/urandom > ${dir}/.t$i && mv ${dir}/.t$i ${dir}/f$i; done`;
  t.equal(sh('bash', ['-c', script]).code, 0, `${n} files written and renamed through the mount`);
  const want = b3sumMany(Array.from({ length: n }, (_, i) => join(src, 'r', `f${i + 1}`)));
  const hashOf = (i: number) => sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', join(dir, `f${i}`)]).stdout;
  const wrong = () => Array.from({ length: n }, (_, i) => i + 1).filter((i) => hashOf(i) !== want.get(join(src, 'r', `f${i}`)));
  t.ok(await until(() => wrong().length === 0, 20_000), `every file has the disk's BLAKE3 at its new name (still wrong: ${wrong().join(' ') || 'none'})`);
  t.same(
    sh('ls', ['-A', dir])
      .stdout.split('\n')
      .filter((x) => x.startsWith('.t')),
    [],
    'no temporary name left',
  );
});
