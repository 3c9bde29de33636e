import t from 'tap';
import { chmodSync, closeSync, futimesSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { b3sum, tempDir, until, vdfs, vdfsOk } from './helpers/cli';
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

t.test('files written through the mount tell the kernel nothing it knows; a change on the disk still reaches it', async (t) => {
  const { dir, src, mnt } = await mountWithOracle(t, 'u');
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  // Into the location's root: a new folder made for them would be a change through a path
  // (mkdir notifies), and the watcher, seeing the folder's mtime move under a burst of
  // creations, may index it before the CREATE that moved it does.
  const unpack = async (prefix: string) => {
    const names = Array.from({ length: 100 }, (_, i) => `${prefix}${i}`);
    for (const [i, name] of names.entries()) writeFileSync(join(tree, name), randomBytes(100 + ((i * 37) % 3000)));
    const tarball = join(dir, `${prefix}.tar`);
    t.equal(sh('tar', ['cf', tarball, '-C', tree, ...names]).code, 0);
    t.ok(await until(() => fuseStats(mnt).sweepPending === 0, 30_000), 'no sweep pending before the writes');
    const before = fuseStats(mnt);
    mkdirSync(join(mnt, 'u', `${prefix}-dir`)); // MKDIR through the kernel: it caches the folder from the reply
    const r = sh('tar', ['xf', tarball, '-C', join(mnt, 'u')]);
    t.equal(r.code, 0, r.stderr);
    const hashOf = (name: string) => sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', join(mnt, 'u', name)]).stdout.trim();
    // Every hash committed: the last of the daemon's own index changes for these files is done.
    t.ok(await until(() => names.every((name) => hashOf(name) === b3sum(join(tree, name))), 60_000), 'every file has its hash');
    t.ok(await until(() => fuseStats(mnt).sweepPending === 0, 30_000), 'no sweep pending after them');
    const after = fuseStats(mnt);
    const delta = (k: string) => (after[k] as number) - (before[k] as number);
    return { changes: delta('changes'), sweeps: delta('sweeps'), invalidations: delta('invalidations') };
  };
  // A change from elsewhere during a round (the end of a rescan) would notify the kernel side
  // rightly: such a round proves nothing and is done again, with new names.
  let round = { changes: -1, sweeps: -1, invalidations: -1 };
  for (const prefix of ['a', 'b', 'c']) {
    round = await unpack(prefix);
    if (round.changes === 0) break;
  }
  t.same(
    round,
    { changes: 0, sweeps: 0, invalidations: 0 },
    'mkdir, and creating, writing, chmod/chown/utimes through open files, closing and hashing files notified no change, started no sweep, invalidated nothing',
  );

  const sweeps = fuseStats(mnt).sweeps as number;
  // The kernel caches a0's pages now; a write on the disk behind the mount must replace them.
  t.equal(b3sum(join(mnt, 'u', 'a0')), b3sum(join(tree, 'a0')), 'read through the mount (now in the page cache)');
  const changed = randomBytes(5000);
  writeFileSync(join(src, 'a0'), changed);
  t.ok(await until(() => readFileSync(join(mnt, 'u', 'a0')).equals(changed), 30_000), 'the change on the disk is read through the mount');
  t.ok(await until(() => (fuseStats(mnt).sweeps as number) > sweeps, 30_000), 'and the change the kernel did not make starts a sweep');
});

t.test('files rsync -a wrote look unchanged to the next invalidation sweep; a chmod on the disk afterwards still reaches the kernel', async (t) => {
  const { dir, home, src, mnt } = await mountWithOracle(t, 'u');
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  const names = Array.from({ length: 60 }, (_, i) => `r${i}`);
  for (const [i, name] of names.entries()) writeFileSync(join(tree, name), randomBytes(100 + i * 50), { mode: 0o644 });
  // Each file: written under a temporary name (mode 0600), closed, its times set by name, opened
  // read-only and fchmod'ed to 0644 (answered in the addon), renamed.
  const r = sh('rsync', ['-a', `${tree}/`, join(mnt, 'u', 'r')]);
  t.equal(r.code, 0, r.stderr);
  // Asked of the index (vdfs ls), not through the mount: a LOOKUP or GETATTR of a file would
  // tell JS what the kernel holds again.
  const want = new Map(names.map((name) => [name, b3sum(join(tree, name))]));
  const hashed = () => {
    const listed = JSON.parse(vdfs(home, ['ls', '--json', '/u/r']).stdout || '[]') as { name: string; hash?: string }[];
    return listed.filter((e) => e.hash === want.get(e.name)).length === names.length;
  };
  t.ok(await until(hashed, 60_000), 'every file has its hash');
  t.ok(await until(() => fuseStats(mnt).sweepPending === 0, 30_000), 'no sweep pending');
  const before = fuseStats(mnt);
  // A change whose extent the daemon does not know (another process's commit to the index: a
  // scan by the CLI) starts a sweep over every node the kernel holds.
  writeFileSync(join(src, 'from-elsewhere'), 'x');
  vdfsOk(home, ['scan', 'u']);
  const checked = () => Number(fuseStats(mnt).swept) - Number(before.swept);
  t.ok(await until(() => checked() >= names.length && fuseStats(mnt).sweepPending === 0, 30_000), `a sweep over every node, now done (${checked()} checked)`);
  const swept = Number(fuseStats(mnt).invalidations) - Number(before.invalidations);
  // At most the folder the new file moved the mtime of; every rsync'd file is as the kernel has it.
  t.ok(swept <= 1, `the sweep invalidated ${swept} nodes (at most the location's folder)`);
  const mid = fuseStats(mnt);
  chmodSync(join(src, 'r', 'r7'), 0o600);
  t.ok(await until(() => Number(fuseStats(mnt).invalidations) > Number(mid.invalidations), 30_000), 'a chmod on the disk invalidates the node');
  t.equal(statSync(join(mnt, 'u', 'r', 'r7')).mode & 0o777, 0o600, 'and the new mode is seen through the mount');
});

t.test('files saved on the disk under a temporary name and renamed, and names made and removed at once, reach the index as the disk has them', async (t) => {
  const { dir, home, src } = await mountWithOracle(t, 'u');
  const want = new Map<string, string>();
  for (let i = 0; i < 40; i++) {
    const data = randomBytes(50 + i * 97);
    writeFileSync(join(src, `.save-${i}.tmp`), data);
    renameSync(join(src, `.save-${i}.tmp`), join(src, `saved-${i}`));
    writeFileSync(join(src, `.gone-${i}`), 'x');
    unlinkSync(join(src, `.gone-${i}`));
    writeFileSync(join(dir, 'want'), data);
    want.set(`saved-${i}`, b3sum(join(dir, 'want')));
  }
  const listed = () => JSON.parse(vdfs(home, ['ls', '--json', '/u']).stdout || '[]') as { name: string; hash?: string }[];
  t.ok(
    await until(() => {
      const l = listed();
      return [...want].every(([name, hash]) => l.some((e) => e.name === name && e.hash === hash));
    }, 60_000),
    'every saved file is indexed at its final name with the hash of its bytes',
  );
  t.same(
    listed()
      .map((e) => e.name)
      .filter((n) => n.startsWith('.')),
    [],
    'no temporary or removed name is indexed',
  );
});

t.test('hashing a file at its close keeps the access time its writer set', async (t) => {
  const { src, mnt } = await mountWithOracle(t, 'u');
  const data = randomBytes(3000);
  const fd = openSync(join(mnt, 'u', 'f'), 'w');
  writeSync(fd, data);
  // atime older than mtime: a read without O_NOATIME would move it (relatime).
  futimesSync(fd, 1_000_000_000, 2_000_000_000);
  closeSync(fd);
  const hashOf = () => sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', join(mnt, 'u', 'f')]).stdout.trim();
  const want = join(tempDir(t), 'want');
  writeFileSync(want, data);
  t.ok(await until(() => hashOf() === b3sum(want), 30_000), 'hashed after its close (the disk file is not read here: that would move its atime)');
  t.equal(statSync(join(src, 'f')).atimeMs, 1_000_000_000_000, 'the disk keeps the atime the writer set');
  t.equal(statSync(join(src, 'f')).mtimeMs, 2_000_000_000_000, 'and its mtime');
});

// After each CREATE the kernel drops the folder's attributes and asks for them at the next
// name's permission check: the addon answers that GETATTR with what the CREATE's handler
// worked out (primeAttr). What it answers must be the folder as it is on the disk.
const CREATOR = `
import os, sys, json
d = sys.argv[1]
out = []
for i in range(int(sys.argv[2])):
    fd = os.open(os.path.join(d, 'n%d' % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b'x' * (i + 1))
    os.close(fd)
    st = os.stat(d)
    out.append([str(st.st_mtime_ns), str(st.st_mode), str(st.st_uid), str(st.st_gid)])
print(json.dumps(out))
`;

t.test("a folder's attributes after a file is created in it are answered natively, and are the folder's own", async (t) => {
  const { src, mnt } = await mountWithOracle(t, 'u');
  mkdirSync(join(src, 'p'));
  t.ok(await until(() => sh('ls', [join(mnt, 'u', 'p')]).code === 0, 30_000), 'the folder is seen through the mount');
  const before = fuseStats(mnt);
  const r = sh('python3', ['-c', CREATOR, join(mnt, 'u', 'p'), '40']);
  t.equal(r.code, 0, r.stderr);
  const after = fuseStats(mnt);
  const seen = JSON.parse(r.stdout) as string[][];
  // The last stat through the mount after the last create, against the folder on the disk.
  const disk = statSync(join(src, 'p'), { bigint: true });
  const last = seen[seen.length - 1];
  t.same(last, [disk.mtimeNs, disk.mode, disk.uid, disk.gid].map(String), "the folder's mtime, mode and owner after the creates are the disk's");
  // Each stat after a create saw an mtime at least as new as the one before (never an older folder).
  t.ok(
    seen.every((s, i) => i === 0 || BigInt(s[0]) >= BigInt(seen[i - 1][0])),
    'mtimes never went back',
  );
  const count = (st: Record<string, number | string>, k: string) => Number(st[k] ?? 0);
  const native = count(after, 'native.getattr') - count(before, 'native.getattr');
  const jsGetattrs = count(after, 'op.getattr') - count(before, 'op.getattr') - native;
  t.ok(native >= 30, `GETATTRs of the folder after its creates answered natively: ${native}, ${jsGetattrs} in JS`);
  // A change to the folder behind the mount still reaches the kernel (an answer kept in the addon
  // is used once and for at most 50 ms, and the invalidation of the folder takes it back).
  chmodSync(join(src, 'p'), 0o700);
  t.ok(await until(() => (statSync(join(mnt, 'u', 'p')).mode & 0o777) === 0o700, 30_000), 'a chmod on the disk is seen through the mount');
});

// Two writers in one folder at once: one creating files, one creating and removing others. A
// CREATE's handler must not prime the folder with attributes read while the other request was
// changing it (the kernel would cache an mtime older than the disk's).
const CHURN = `
import os, sys
d, tag, n, remove = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1'
for i in range(n):
    p = os.path.join(d, '%s%d' % (tag, i))
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    if remove:
        os.unlink(p)
    os.stat(d)
`;

t.test("a folder two processes create and remove files in at once shows the disk's attributes afterwards", async (t) => {
  const { src, mnt } = await mountWithOracle(t, 'u');
  mkdirSync(join(src, 'q'));
  t.ok(await until(() => sh('ls', [join(mnt, 'u', 'q')]).code === 0, 30_000), 'the folder is seen through the mount');
  const { spawn } = await import('node:child_process');
  const run = (tag: string, remove: boolean) =>
    new Promise<number | null>((res) => {
      const p = spawn('python3', ['-c', CHURN, join(mnt, 'u', 'q'), tag, '300', remove ? '1' : '0'], { stdio: 'ignore' });
      p.on('exit', res);
    });
  for (let round = 0; round < 3; round++) {
    const codes = await Promise.all([run(`a${round}_`, false), run(`b${round}_`, true)]);
    t.same(codes, [0, 0], `round ${round}: both writers ran`);
    const disk = statSync(join(src, 'q'), { bigint: true });
    const seen = statSync(join(mnt, 'u', 'q'), { bigint: true });
    t.same([seen.mtimeNs, seen.mode].map(String), [disk.mtimeNs, disk.mode].map(String), `round ${round}: the folder's mtime and mode through the mount are the disk's`);
  }
});
