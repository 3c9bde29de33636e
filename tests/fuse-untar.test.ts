import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { b3sum, until, vdfs } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';

// Small-file writes through the mount (`tar x`, docs/fuse.md "Small-file writes"): the index
// rows of created and flushed files are committed in groups (index/commit-group.ts), and the
// daemon's own changes start no kernel invalidation sweep. Neither may make a name late or a
// cached page stale.

/** The binding's counters (user.vdfs.fuse on the mount's root). */
function fuseStats(mnt: string): Record<string, number | string> {
  const r = sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]);
  return JSON.parse(r.stdout) as Record<string, number | string>;
}

t.test('names created through the mount are found at once, and reach other processes moments later', async (t) => {
  const { home, mnt } = await mountWithOracle(t, 'u');
  const n = 150;
  // Each name is read, stat'ed and listed right after its close, before the group holding its row can have committed.
  const r = sh('bash', [
    '-c',
    `cd ${JSON.stringify(join(mnt, 'u'))} && for i in $(seq 1 ${n}); do printf %s "$i" > "f$i" || exit 1; [ "$(cat "f$i")" = "$i" ] || exit 2; [ "$(stat -c %s "f$i")" = "\${#i}" ] || exit 3; ls | grep -qx "f$i" || exit 4; done`,
  ]);
  t.equal(r.code, 0, `every name was there right after its creation (exit 1 create, 2 read, 3 size, 4 listing) ${r.stderr}`);
  const names = Array.from({ length: n }, (_, i) => `f${i + 1}`);
  const listed = () => new Set(vdfs(home, ['ls', '/u']).stdout.split(/\s+/));
  t.ok(
    await until(() => {
      const l = listed();
      return names.every((x) => l.has(x));
    }, 30_000),
    'another process (vdfs ls, its own connection) sees every name once the groups commit',
  );
});

t.test('files written through the mount start no invalidation sweep; a change on the disk still reaches cached pages', async (t) => {
  const { dir, src, mnt } = await mountWithOracle(t, 'u');
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  const names = Array.from({ length: 100 }, (_, i) => `f${i}`);
  for (const [i, name] of names.entries()) writeFileSync(join(tree, name), randomBytes(100 + ((i * 37) % 3000)));
  const tarball = join(dir, 'files.tar');
  t.equal(sh('tar', ['cf', tarball, '-C', tree, ...names]).code, 0);
  mkdirSync(join(mnt, 'u', 'x'));
  // The mkdir's own sweep (a change through a path, not a handle) runs and ends first.
  t.ok(await until(() => fuseStats(mnt).sweepPending === 0, 30_000), 'no sweep pending before the writes');
  const before = fuseStats(mnt).sweeps as number;
  const r = sh('tar', ['xf', tarball, '-C', join(mnt, 'u', 'x')]);
  t.equal(r.code, 0, r.stderr);
  const hashOf = (name: string) => sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', join(mnt, 'u', 'x', name)]).stdout.trim();
  // Every hash committed: the last of the daemon's own index changes for these files is done.
  t.ok(await until(() => names.every((name) => hashOf(name) === b3sum(join(tree, name))), 60_000), 'every file has its hash');
  t.ok(await until(() => fuseStats(mnt).sweepPending === 0, 30_000), 'no sweep pending');
  t.equal(fuseStats(mnt).sweeps, before, 'creating, writing, chmod/chown/utimes through open files, closing and hashing them started no sweep');

  // The kernel caches f0's pages now; a write on the disk behind the mount must replace them.
  t.equal(b3sum(join(mnt, 'u', 'x', 'f0')), b3sum(join(tree, 'f0')), 'read through the mount (now in the page cache)');
  const changed = randomBytes(5000);
  writeFileSync(join(src, 'x', 'f0'), changed);
  t.ok(await until(() => readFileSync(join(mnt, 'u', 'x', 'f0')).equals(changed), 30_000), 'the change on the disk is read through the mount (the watcher, a sweep, INVAL_INODE)');
  t.ok(await until(() => (fuseStats(mnt).sweeps as number) > before, 30_000), 'and the change the kernel did not make starts a sweep');
});
