import t from 'tap';
import { chownSync, linkSync, lstatSync, mkdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { openVfsInProcess } from './helpers/vfs-in-process';
import type { DirEntry } from '../mount/vfs/types';
import { commitGroup } from '../index/commit-group';
import { loadNativeFuse } from '../core/native-addon';

// A directory's listing is kept and handed out again while nothing it was built from moved
// (mount/vfs/entry-attrs.ts). Each change below must show in the next listing, compared with
// what the disk (lstat) or the change itself says.

const byName = (list: DirEntry[]) => new Map(list.map((e) => [e.name, e.attr]));

t.test('a kept listing is handed out again until the index, the disk stats or a live file moves', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'loc');
  mkdirSync(src);
  for (const n of ['a', 'b', 'c']) writeFileSync(join(src, n), n);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'loc', src]);
  vdfsOk(home, ['scan']);
  const { vfs, home: vfsHome } = await openVfsInProcess(t, home);

  const first = await vfs.readdir('/loc');
  t.equal(await vfs.readdir('/loc'), first, 'nothing changed: the same listing again');

  await vfs.chmod('/loc/a', 0o600);
  const afterChmod = byName(await vfs.readdir('/loc'));
  t.equal(afterChmod.get('a')!.mode & 0o7777, 0o600, 'a chmod through the VFS shows');
  t.equal(afterChmod.get('a')!.mode & 0o7777, statSync(join(src, 'a')).mode & 0o7777, 'as on the disk');

  // An atime alone is not in the index: only the disk stats move.
  await vfs.setTimes('/loc/b', { sec: 1_000_000_000, nsec: 0 }, 'omit');
  const atime = byName(await vfs.readdir('/loc')).get('b')!.atimeMs;
  t.equal(Math.round(atime), 1_000_000_000_000, 'an atime-only change shows');

  // Another process changes the index (a scan of a file changed on the disk).
  writeFileSync(join(src, 'c'), 'longer content');
  // The daemon's own rows wait up to 10 ms for their grouped commit (index/commit-group.ts);
  // the CLI below blocks this process's event loop, so the group is committed first.
  commitGroup(vfsHome.db);
  vdfsOk(home, ['scan']);
  // The resolver reads SQLite's data_version at most once a millisecond.
  await new Promise((r) => setTimeout(r, 5));
  t.equal(byName(await vfs.readdir('/loc')).get('c')!.size, 14, "another process's commit shows");

  // A file open for writing: its live size shows while it is open, before any commit.
  const fh = await vfs.open('/loc/d', { write: true, create: true, mode: 0o644 });
  const empty = byName(await vfs.readdir('/loc')).get('d');
  t.equal(empty?.size, 0, 'the new file is listed');
  await vfs.write(fh, 0, Buffer.alloc(5000, 1));
  t.equal(byName(await vfs.readdir('/loc')).get('d')!.size, 5000, 'its live size shows while it is open');
  await vfs.release(fh);
  t.equal(byName(await vfs.readdir('/loc')).get('d')!.size, 5000, 'and after the close');

  await vfs.unlink('/loc/a');
  t.notOk(byName(await vfs.readdir('/loc')).has('a'), 'a removed name is gone');
});

t.test("a change in one folder keeps the other folders' listings, and drops its own", async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'loc');
  for (const d of ['x', 'y', 'x/deep']) mkdirSync(join(src, d), { recursive: true });
  for (const f of ['x/f', 'y/g', 'x/deep/h']) writeFileSync(join(src, f), f);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'loc', src]);
  vdfsOk(home, ['scan']);
  const { vfs } = await openVfsInProcess(t, home);
  const x = await vfs.readdir('/loc/x');
  const deep = await vfs.readdir('/loc/x/deep');

  // A file written in y (created, open for writing, closed: its refresh and hash commits).
  const fh = await vfs.open('/loc/y/new', { write: true, create: true, mode: 0o644 });
  await vfs.write(fh, 0, Buffer.from('data'));
  t.equal(await vfs.readdir('/loc/x'), x, "a file open for writing in y: x's listing is handed out again");
  t.equal(byName(await vfs.readdir('/loc/y')).get('new')?.size, 4, "y's own shows the live size");
  await vfs.release(fh);
  t.equal(await vfs.readdir('/loc/x'), x, 'and after its close');
  t.equal(byName(await vfs.readdir('/loc/y')).get('new')?.size, 4, 'y shows the new file');

  // x's own child changes: x is built again, its subfolder's listing is kept.
  await vfs.chmod('/loc/x/f', 0o600);
  const x2 = await vfs.readdir('/loc/x');
  t.not(x2, x, 'a chmod in x: its listing is built again');
  t.equal(byName(x2).get('f')!.mode & 0o7777, 0o600, 'and shows it');
  t.equal(await vfs.readdir('/loc/x/deep'), deep, 'x/deep is kept');

  // Only the disk stats of a child move (an atime): its folder's listing is built again.
  await vfs.setTimes('/loc/x/deep/h', { sec: 1_000_000_000, nsec: 0 }, 'omit');
  t.equal(Math.round(byName(await vfs.readdir('/loc/x/deep')).get('h')!.atimeMs), 1_000_000_000_000, 'an atime-only change in x/deep shows');

  // A folder removed with what it holds: the listings below it go too.
  await vfs.unlink('/loc/x/deep/h');
  await vfs.rmdir('/loc/x/deep');
  await t.rejects(vfs.readdir('/loc/x/deep'), { code: 'ENOENT' }, 'a removed folder is not listed from memory');
  t.notOk(byName(await vfs.readdir('/loc/x')).has('deep'), 'and is gone from its parent');
});

// A folder's first listing reads the disk's stats of all its names in one native call
// (statDirAsync) from 64 names up: owners, link counts, inode numbers and times must be the
// disk's own, exactly as lstat says, and a symlink's its own (never its target's).
t.test("a big folder's first listing shows every name's own lstat", async (t) => {
  t.ok(loadNativeFuse().addon?.statDirAsync, 'the addon has statDirAsync (the listing would lstat name by name without it)');
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'loc');
  const outside = join(dir, 'outside');
  mkdirSync(src);
  writeFileSync(outside, 'not in the location');
  chownSync(outside, 4242, 4343);
  for (let i = 0; i < 100; i++) {
    const f = join(src, `f${i}`);
    writeFileSync(f, 'x'.repeat(i));
    chownSync(f, 1000 + i, 2000 + (i % 7));
    utimesSync(f, 1_000_000 + i, 2_000_000 + i);
  }
  linkSync(join(src, 'f3'), join(src, 'hard3'));
  symlinkSync(outside, join(src, 'link'));
  mkdirSync(join(src, 'sub'));
  chownSync(join(src, 'sub'), 3000, 3001);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'loc', src]);
  vdfsOk(home, ['scan']);
  const { vfs } = await openVfsInProcess(t, home);

  const listed = byName(await vfs.readdir('/loc'));
  t.equal(listed.size, 103, 'every name is listed');
  const wrong: string[] = [];
  for (const [name, a] of listed) {
    const st = lstatSync(join(src, name), { bigint: true });
    const want = { uid: Number(st.uid), gid: Number(st.gid), nlink: Number(st.nlink), atime: Number(st.atimeNs / 1_000_000n), ctime: Number(st.ctimeNs / 1_000_000n) };
    const got = { uid: a.uid, gid: a.gid, nlink: a.nlink, atime: Math.floor(a.atimeMs), ctime: Math.floor(a.ctimeMs) };
    if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${name}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
  }
  t.same(wrong, [], 'owners, link counts and times are the disk lstat of each name');
  t.equal(listed.get('hard3')!.ino, listed.get('f3')!.ino, 'two names of one file share its inode number');
  t.not(listed.get('f4')!.ino, listed.get('f3')!.ino, 'another file has another');
  t.equal(listed.get('link')!.uid, Number(lstatSync(join(src, 'link')).uid), 'the symlink shows its own owner');
  t.not(listed.get('link')!.uid, 4242, "never its target's");
});
