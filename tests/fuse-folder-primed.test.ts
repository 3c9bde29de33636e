import t from 'tap';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { until } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';

// After any change of a folder's names the kernel drops the folder's attributes and asks for
// them (GETATTR) at the next permission check in it. The handler of the change reads them once
// it is done and the addon answers that GETATTR (primeAttr; docs/fuse.md). What it answers
// must be the folder as the disk has it right then, for every kind of change.

/** The binding's counters (user.vdfs.fuse on the mount's root). */
function fuseStats(mnt: string): Record<string, number | string> {
  const r = sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]);
  return JSON.parse(r.stdout) as Record<string, number | string>;
}

// Each step changes names in p (and q), then stats the folders through the mount and on the disk.
const STEPS = `
import os, sys, json
mnt, disk, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
bad = []
def check(step, *names):
    for n in names:
        a, b = os.stat(os.path.join(mnt, n)), os.stat(os.path.join(disk, n))
        got = [a.st_mtime_ns, a.st_nlink, a.st_mode, a.st_uid, a.st_gid]
        want = [b.st_mtime_ns, b.st_nlink, b.st_mode, b.st_uid, b.st_gid]
        if got != want:
            bad.append([step, n, got, want])
for i in range(rounds):
    P, Q = os.path.join(mnt, 'p'), os.path.join(mnt, 'q')
    os.mkdir(os.path.join(P, 'd%d' % i)); check('mkdir', 'p')
    os.close(os.open(os.path.join(P, 'f%d' % i), os.O_WRONLY | os.O_CREAT, 0o644)); check('create', 'p')
    os.rename(os.path.join(P, 'f%d' % i), os.path.join(P, 'g%d' % i)); check('rename in p', 'p')
    os.rename(os.path.join(P, 'g%d' % i), os.path.join(Q, 'g%d' % i)); check('rename p to q', 'p', 'q')
    os.rename(os.path.join(P, 'd%d' % i), os.path.join(Q, 'd%d' % i)); check('rename a folder p to q', 'p', 'q')
    os.symlink('g%d' % i, os.path.join(Q, 's%d' % i)); check('symlink', 'q')
    os.link(os.path.join(Q, 'g%d' % i), os.path.join(P, 'h%d' % i)); check('link', 'p')
    os.mkfifo(os.path.join(P, 'fifo%d' % i)); check('mknod', 'p')
    os.unlink(os.path.join(P, 'fifo%d' % i)); check('unlink', 'p')
    os.unlink(os.path.join(P, 'h%d' % i)); check('unlink a link', 'p')
    os.rmdir(os.path.join(Q, 'd%d' % i)); check('rmdir', 'q')
print(json.dumps(bad))
`;

t.test("a folder's attributes after each change of its names are answered natively, and are the disk's", async (t) => {
  const { src, mnt } = await mountWithOracle(t, 'u');
  mkdirSync(join(src, 'p'));
  mkdirSync(join(src, 'q'));
  t.ok(await until(() => sh('ls', [join(mnt, 'u', 'p'), join(mnt, 'u', 'q')]).code === 0, 30_000), 'the folders are seen through the mount');
  const before = fuseStats(mnt);
  const rounds = 10;
  const r = sh('python3', ['-c', STEPS, join(mnt, 'u'), src, String(rounds)]);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), [], 'after every step, each folder through the mount is the one on the disk (mtime, links, mode, owner)');
  const after = fuseStats(mnt);
  const count = (st: Record<string, number | string>, k: string) => Number(st[k] ?? 0);
  const native = count(after, 'native.getattr') - count(before, 'native.getattr');
  const inJs = count(after, 'op.getattr') - count(before, 'op.getattr') - native;
  // 11 changes per round, 13 folder checks: without the priming every check after a change was a GETATTR in JS.
  t.ok(native >= 8 * rounds, `GETATTRs of the folders after their changes answered natively: ${native}, ${inJs} in JS`);
  // A change behind the mount still reaches the kernel (the addon's answer is used once, for at most 50 ms).
  chmodSync(join(src, 'q'), 0o700);
  t.ok(await until(() => (statSync(join(mnt, 'u', 'q')).mode & 0o777) === 0o700, 30_000), 'a chmod on the disk is seen through the mount');
});
