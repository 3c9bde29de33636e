import t from 'tap';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, until, vdfsOk } from './helpers/cli';
import { mountWithOracle } from './helpers/mount';
import { openVfsInProcess } from './helpers/vfs-in-process';
import { InodeTable } from '../mount/fuse/inode-table';
import { Invalidator } from '../mount/fuse/invalidator';
import { NegativeNames } from '../mount/fuse/negative-names';

// The kernel keeps a LOOKUP's "no such name" for fuse.negativeTimeout (default 10 s). A name
// the index gets meanwhile must reach it at once: the invalidator drops the kernel's negative
// entry (INVAL_ENTRY), whether the change named the path (the watcher) or not (a rescan,
// another process's commit). The mount here keeps negative entries for a minute, so a name
// seen within the 30 s waits was invalidated, not timed out.

const exists = (p: string) => {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
};

t.test('a name looked up as missing through the mount is seen once it is made on the disk', async (t) => {
  const { src, mnt } = await mountWithOracle(t, 'u', [], [], { 'fuse.attrTimeout': '60', 'fuse.entryTimeout': '60', 'fuse.negativeTimeout': '60' });
  mkdirSync(join(src, 'd'));
  t.ok(await until(() => exists(join(mnt, 'u', 'd')), 30_000), 'the folder is there');
  for (const name of ['late', 'later']) {
    t.notOk(exists(join(mnt, 'u', 'd', name)), `${name}: not there yet (the kernel now remembers that)`);
    t.notOk(exists(join(mnt, 'u', 'd', name)), `${name}: still not there`);
    writeFileSync(join(src, 'd', name), name);
    t.ok(await until(() => exists(join(mnt, 'u', 'd', name)), 30_000), `${name}: seen through the mount after it was made on the disk`);
    t.equal(statSync(join(mnt, 'u', 'd', name)).size, name.length, `${name}: with its size`);
  }
});

t.test('a change of unknown extent drops the negative entries of names the index now has, and only those', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'loc');
  mkdirSync(join(src, 'd'), { recursive: true });
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'loc', src]);
  vdfsOk(home, ['scan']);
  const { vfs } = await openVfsInProcess(t, home);
  const inodes = new InodeTable();
  const sent: string[] = [];
  const inv = new Invalidator(vfs, inodes, { invalidateNode: (id) => sent.push(`node ${id}`), invalidateEntry: (p, n) => sent.push(`entry ${p}/${n}`) });
  t.teardown(() => inv.stop());
  const loc = inodes.lookup(inodes.root, 'loc', 'dir');
  const d = inodes.lookup(loc, 'd', 'dir');
  // What the LOOKUP handler records when it answers "no such name".
  inodes.negatives.note(d.id, 'x', 60_000);
  inodes.negatives.note(d.id, 'y', 60_000);
  inodes.negatives.note(d.id, 'gone', -1); // its time ran out: the kernel no longer remembers it
  inodes.negatives.note(d.id, 'made', 60_000);
  inodes.lookup(d, 'made', 'file'); // the kernel got an entry for it (a CREATE through the mount)

  await vfs.getattr('/loc/d'); // the index's version as the VFS saw it last
  // x and made are made on the disk and indexed by another process: the extent is not known here.
  writeFileSync(join(src, 'd', 'x'), 'x');
  writeFileSync(join(src, 'd', 'made'), 'm');
  writeFileSync(join(src, 'd', 'gone'), 'g');
  vdfsOk(home, ['scan', 'loc']);
  // The next lookup sees the other connection's commit (PRAGMA data_version), which changes everything.
  await new Promise((r) => setTimeout(r, 5));
  await vfs.getattr('/loc/d');
  t.ok(await until(() => sent.includes(`entry ${d.id}/x`), 30_000), 'x: its negative entry is dropped');
  await until(() => !inv.pending, 30_000);
  t.notOk(sent.includes(`entry ${d.id}/y`), 'y (still missing) is left to its timeout');
  t.notOk(sent.includes(`entry ${d.id}/made`), 'a name the kernel holds an entry for is not dropped');
  t.notOk(sent.includes(`entry ${d.id}/gone`), 'nor one whose negative entry ran out');
  t.equal(inodes.negatives.size, 1, 'only y is still remembered');
});

t.test('the names remembered are bounded, and those whose time ran out are dropped as others come', async (t) => {
  const names = new NegativeNames(100);
  for (let i = 0; i < 1000; i++) names.note(1, `n${i}`, 60_000);
  t.equal(names.size, 100, 'at most the bound');
  t.same(
    names.live().map((n) => n.name),
    Array.from({ length: 100 }, (_, i) => `n${900 + i}`),
    'the newest are kept, oldest first',
  );
  const short = new NegativeNames(100);
  for (let i = 0; i < 10; i++) short.note(1, `old${i}`, 20);
  await new Promise((r) => setTimeout(r, 40));
  short.note(1, 'new', 60_000);
  t.equal(short.size, 1, 'names whose time ran out went when the next came');
  t.notOk(short.forget(1, 'old3'), 'so there is nothing to forget of them');
  t.ok(short.forget(1, 'new'), 'the live one is there');
  // An idle daemon's reclaim keeps none of a past burst.
  for (let i = 0; i < 10; i++) short.note(2, `burst${i}`, 20);
  await new Promise((r) => setTimeout(r, 40));
  short.prune();
  t.equal(short.size, 0, 'prune forgets every name whose time ran out');
});
