import t from 'tap';
import { chmodSync, linkSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { indexedLocation } from './helpers/mount';
import { openVfsInProcess } from './helpers/vfs-in-process';

// The index follows a written file by a plain lstat of its path when that lstat finds the very
// file the writer holds open (one system call instead of the safe walk's five). An attacker who
// swaps the file's folder for a symlink to a folder outside the location must still get
// nothing of the outside file into the index: not its size, not its mode.

const INSIDE = 'written through the vfs';
const SECRET = 'SECRET OUTSIDE THE LOCATION, LONGER THAN THE INSIDE FILE';

/** A location with d/f.txt open for writing through the VFS, INSIDE written; `outside` is an empty folder beside it. */
async function writing(t: Parameters<typeof openVfsInProcess>[0]) {
  const { dir, home: homeDir, src } = indexedLocation(t, 'loc', {});
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  const { vfs, home } = await openVfsInProcess(t, homeDir);
  const loc = home.locations.get('loc');
  await vfs.mkdir('/loc/d', 0o755);
  const fh = await vfs.open('/loc/d/f.txt', { write: true, create: true, mode: 0o644 });
  await vfs.write(fh, 0, Buffer.from(INSIDE));
  return { src, outside, vfs, home, loc, fh };
}

t.test('a refresh never indexes a file reached through a swapped-in symlink', async (t) => {
  const { src, outside, vfs, home, loc, fh } = await writing(t);
  writeFileSync(join(outside, 'f.txt'), SECRET);
  chmodSync(join(outside, 'f.txt'), 0o600);
  await vfs.flush(fh);
  t.equal(home.entries.resolve(loc.id, 'd/f.txt')?.size, INSIDE.length, 'before the swap: the written size');

  // The attacker: d/ becomes a link to the outside folder while the file is open.
  renameSync(join(src, 'd'), join(src, 'd.real'));
  symlinkSync(outside, join(src, 'd'));
  await vfs.write(fh, INSIDE.length, Buffer.from('!'));
  await vfs.flush(fh);
  await vfs.release(fh);
  const e = home.entries.resolve(loc.id, 'd/f.txt');
  t.not(e?.size, SECRET.length, "the outside file's size is never indexed");
  t.not(e?.mode, 0o600, "the outside file's mode is never indexed");
  t.equal(e, undefined, 'through the link the name is not there for the index');
});

t.test('a refresh that finds the written file itself by its plain path takes its lstat', async (t) => {
  const { src, outside, vfs, home, loc, fh } = await writing(t);
  // The same inode under the linked folder (a hard link): the file the writer holds, nothing else.
  linkSync(join(src, 'd', 'f.txt'), join(outside, 'f.txt'));
  renameSync(join(src, 'd'), join(src, 'd.real'));
  symlinkSync(outside, join(src, 'd'));
  await vfs.write(fh, INSIDE.length, Buffer.from('!'));
  await vfs.release(fh);
  t.equal(home.entries.resolve(loc.id, 'd/f.txt')?.size, INSIDE.length + 1, "the writer's own file: its size");
});

// The watcher's refresh of a name removed on the disk probed it (gone), then a CREATE made the
// file again and its own refresh committed the row first; the watcher's then removed that row
// of a file on the disk, and the kernel's next OPEN of it answered ENOENT (fuse-rescan-race in
// CI). A refresh whose probe is older than one already applied probes again.
t.test('a refresh that probed before a later one applied does not undo it', async (t) => {
  const { home: homeDir, src } = indexedLocation(t, 'loc', {});
  const { vfs, home } = await openVfsInProcess(t, homeDir);
  const loc = home.locations.get('loc');
  for (let i = 0; i < 5; i++) {
    const f = join(src, `f${i}`);
    // Probes f now (gone) and the location's root on the thread pool: it applies last.
    const stale = vfs.writer.refresh(loc, `f${i}`, true, true);
    writeFileSync(f, 'made again');
    const fresh = vfs.writer.refresh(loc, `f${i}`);
    t.ok(await fresh, `${i}: the later refresh indexes the file`);
    t.ok(await stale, `${i}: the earlier one, applied after it, finds the file too`);
    t.equal(home.entries.resolve(loc.id, `f${i}`)?.size, 'made again'.length, `${i}: the row is still there`);
  }
});
