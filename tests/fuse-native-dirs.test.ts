import t from 'tap';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { vdfsOk, until } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';

/** The daemon's counters (getxattr user.vdfs.fuse on the mount). */
function stats(mnt: string): Record<string, number> {
  return JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as Record<string, number>;
}
const n = (s: Record<string, number>, k: string) => s[k] ?? 0;

/** Everything another job dropped from the kernel's caches so far (test files run in parallel; some drop caches). */
const drops = () => (readFileSync('/proc/vmstat', 'utf8').match(/^drop_\w+ \d+$/gm) ?? []).join();

const listed = (dir: string) => sh('ls', ['-A', dir]).stdout.split('\n').filter(Boolean).sort();
const onDisk = (dir: string) => readdirSync(dir).sort();

t.test("a fresh folder's OPENDIR and RELEASEDIR are answered in the addon, and it still lists what the disk has after a change, a removal and dropped caches", async (t) => {
  const { mnt, src, home } = await mountWithOracle(t, 'l');
  mkdirSync(join(src, 'd', 'sub'), { recursive: true });
  for (let i = 0; i < 50; i++) writeFileSync(join(src, 'd', `f${i}`), `${i}`);
  t.ok(await until(() => vdfsOk(home, ['ls', '/l/d']).stdout.includes(' f49'), 20_000), 'the watcher indexed the folder');
  const d = join(mnt, 'l', 'd');
  t.same(listed(d), onDisk(join(src, 'd')), 'listed as on the disk (by JS: READDIRPLUS)');

  // Opened again at once: the addon answers the open and the close, and the kernel lists from its copy.
  let [before, after] = [stats(mnt), stats(mnt)];
  for (let attempt = 0; attempt < 5; attempt++) {
    const d0 = drops();
    if (attempt > 0) listed(d);
    before = stats(mnt);
    for (let i = 0; i < 3; i++) listed(d);
    after = stats(mnt);
    if (drops() === d0) break;
  }
  t.equal(n(after, 'native.opendir') - n(before, 'native.opendir'), 3, 'three OPENDIRs answered in the addon');
  t.equal(n(after, 'native.releasedir') - n(before, 'native.releasedir'), 3, 'and their RELEASEDIRs');
  t.equal(n(after, 'op.readdirplus'), n(before, 'op.readdirplus'), 'the kernel kept the listing (no READDIRPLUS)');
  t.equal(n(after, 'js.opendir'), n(before, 'js.opendir'), 'no OPENDIR reached JS');

  // A name added on the disk: once the index has it, the next open goes to JS and lists again.
  writeFileSync(join(src, 'd', 'new'), 'n');
  t.ok(await until(() => vdfsOk(home, ['ls', '/l/d']).stdout.includes(' new'), 20_000), 'the watcher indexed the new name');
  t.same(listed(d), onDisk(join(src, 'd')), 'the mount lists it at once (not the kept listing)');

  // A name removed through the mount: the kernel drops its copy itself.
  sh('rm', [join(d, 'f0')]);
  t.same(listed(d), onDisk(join(src, 'd')), 'a file removed through the mount is gone from the listing');
  sh('rmdir', [join(d, 'sub')]);
  t.same(listed(d), onDisk(join(src, 'd')), 'a folder removed through the mount too');

  // The kernel's copy of the listing dropped (page cache): an open the addon answers is then read
  // through by READDIRPLUS on the addon's handle, which JS lists and closes itself.
  listed(d);
  listed(d); // fresh again: this open is the addon's
  const s0 = stats(mnt);
  writeFileSync('/proc/sys/vm/drop_caches', '1');
  t.same(listed(d), onDisk(join(src, 'd')), 'listed as on the disk after the page cache was dropped');
  const s1 = stats(mnt);
  t.ok(n(s1, 'native.opendir') > n(s0, 'native.opendir'), 'opened by the addon');
  t.ok(n(s1, 'op.readdirplus') > n(s0, 'op.readdirplus'), 'and read through by READDIRPLUS');
  t.ok(await until(() => stats(mnt).openDirs === 0, 5_000), `no folder handle left open in JS (${stats(mnt).openDirs})`);
});

t.test('a folder being walked while its names change on the disk never lists a name the disk no longer has', async (t) => {
  const { mnt, src, home } = await mountWithOracle(t, 'l');
  mkdirSync(join(src, 'w'));
  for (let i = 0; i < 20; i++) writeFileSync(join(src, 'w', `a${i}`), 'a');
  t.ok(await until(() => vdfsOk(home, ['ls', '/l/w']).stdout.includes(' a19'), 20_000), 'indexed');
  const w = join(mnt, 'l', 'w');
  for (let round = 0; round < 5; round++) {
    listed(w);
    listed(w);
    sh('rm', [join(src, 'w', `a${round}`)]);
    t.ok(await until(() => !vdfsOk(home, ['ls', '/l/w']).stdout.includes(` a${round}\n`), 20_000), `round ${round}: the index lost a${round}`);
    t.notOk(listed(w).includes(`a${round}`), `round ${round}: the mount no longer lists a${round}`);
  }
});
