import t, { type Test } from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { mountWithOracle, sh, startMount } from './helpers/mount';

/** Runs a bash snippet on the mount and on a plain directory; both must print the same. */
function both(t: Test, mntRoot: string, oracle: string, script: string, label: string): void {
  const a = sh('bash', ['-c', script], { cwd: mntRoot, timeoutMs: 60_000 });
  const b = sh('bash', ['-c', script], { cwd: oracle, timeoutMs: 60_000 });
  t.equal(a.stdout + a.stderr.replace(/.*: /gm, ''), b.stdout + b.stderr.replace(/.*: /gm, ''), label);
}

t.test('POSIX answers for awkward cases, as a local filesystem gives them', async (t) => {
  const { mnt, oracle } = await mountWithOracle(t, 'l');
  const root = join(mnt, 'l');
  both(t, root, oracle, `mkdir -p d/sub; touch d/sub/f; mkdir e; mv -T e d 2>&1; echo "rc=$?"; ls d`, 'rename over a non-empty directory fails (ENOTEMPTY)');
  both(t, root, oracle, `touch "$(printf 'x%.0s' {1..256})" 2>&1; echo "rc=$?"`, 'a name over 255 bytes is ENAMETOOLONG');
  both(t, root, oracle, `echo keep > open.txt; exec 3<open.txt; rm open.txt; cat <&3; ls open.txt 2>&1; echo "rc=$?"`, 'reads on an open handle of a deleted file keep working');
  both(t, root, oracle, `mkdir gone; cd gone; rmdir ../gone; echo x > f 2>&1; echo "rc=$?"`, 'writing into a directory deleted underneath fails (ENOENT)');
  both(t, root, oracle, `exec 3>two.txt 4>>two.txt; echo aaaa >&3; echo bb >&4; exec 3>&- 4>&-; cat two.txt`, 'two writers on one file');
  if (process.env.VDFS_TEST_FUSE_BACKEND === 'compat') {
    // Compat: libfuse's path-based API gives each name its own kernel inode, so a write through
    // one name would leave the other's cached pages stale: hard links stay EPERM there.
    const ln = sh('bash', ['-c', 'echo data > f1 && ln f1 f2'], { cwd: root });
    t.match(ln.stderr, /Operation not permitted/, 'hard links: a clear EPERM');
  } else {
    both(
      t,
      root,
      oracle,
      `echo data > f1 && ln f1 f2 && echo more >> f2 && cat f1 && stat -c '%h' f1 f2 && [ "$(stat -c %i f1)" = "$(stat -c %i f2)" ] && echo same-inode; rm f1; cat f2; stat -c '%h' f2`,
      'hard links share the inode, the link count and the content',
    );
  }
});

t.test('a full disk: ENOSPC reaches the writer and nothing acknowledged is damaged', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const small = join(dir, 'small');
  const mnt = join(dir, 'mnt');
  mkdirSync(small);
  const mounted = sh('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
  t.equal(mounted.code, 0, `a 4 MiB tmpfs for the location (needs root): ${mounted.stderr}`);
  t.teardown(() => {
    sh('umount', ['-l', small]);
  });
  writeFileSync(join(small, 'precious.txt'), 'acknowledged earlier');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'small', small]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const r = sh('dd', ['if=/dev/zero', `of=${join(mnt, 'small', 'big.bin')}`, 'bs=1M', 'count=8', 'conv=fsync']);
  t.not(r.code, 0, 'the write fails');
  t.match(r.stderr, /No space left on device/, 'with ENOSPC');
  t.equal(readFileSync(join(small, 'precious.txt'), 'utf8'), 'acknowledged earlier', 'existing data intact');
  t.equal(sh('cat', [join(mnt, 'small', 'precious.txt')]).stdout, 'acknowledged earlier', 'and readable through the mount');
  t.equal(sh('rm', [join(mnt, 'small', 'big.bin')]).code, 0, 'the partial file can be removed');
  t.equal(sh('bash', ['-c', `echo ok > ${join(mnt, 'small', 'after.txt')} && cat ${join(mnt, 'small', 'after.txt')}`]).stdout, 'ok\n', 'and writing works again');
});
