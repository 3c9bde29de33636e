import t from 'tap';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { indexedLocation } from './helpers/mount';
import { openVfsInProcess } from './helpers/vfs-in-process';

// A file of a local location open for writing: its attributes are the real file's, exact to
// the nanosecond, whoever wrote it (JS, the addon, the kernel in passthrough). The kernel
// stamps mtime at the write; a time noted by JS after it (a millisecond double) showed the
// file ~ms off for as long as it stayed open, and `stat` right after `close` (whose RELEASE is
// still on its way) saw that time and then the disk's (the POSIX model test caught it).

t.test("a local file open for writing shows the disk's size and mtime, to the nanosecond", async (t) => {
  const { home, src } = indexedLocation(t, 'loc', {});
  const { vfs } = await openVfsInProcess(t, home);

  const fh = await vfs.open('/loc/f.txt', { write: true, create: true, mode: 0o644 });
  for (let i = 1; i <= 3; i++) {
    await vfs.write(fh, (i - 1) * 7, Buffer.from(`write ${i}\n`.slice(0, 7)));
    await new Promise((r) => setTimeout(r, 15)); // JS's clock moves on past the kernel's stamp
    const [got, disk] = [await vfs.getattr('/loc/f.txt'), statSync(join(src, 'f.txt'), { bigint: true })];
    t.equal(got.size, Number(disk.size), `write ${i}: the disk's size`);
    t.equal(got.ns?.mtime, disk.mtimeNs, `write ${i}: the disk's mtime, exact`);
  }
  await vfs.release(fh);
  const disk = statSync(join(src, 'f.txt'), { bigint: true });
  t.equal((await vfs.getattr('/loc/f.txt')).ns?.mtime, disk.mtimeNs, 'closed: the same mtime');
});

t.test('a change through a released handle, told by name (noteChanged), reaches the index', async (t) => {
  const { home, src } = indexedLocation(t, 'loc', {});
  const { vfs } = await openVfsInProcess(t, home);
  const fh = await vfs.open('/loc/g.txt', { write: true, create: true, mode: 0o644 });
  await vfs.write(fh, 0, Buffer.from('hello'));
  await vfs.release(fh);
  t.equal((await vfs.getattr('/loc/g.txt')).mode & 0o7777, 0o644, 'indexed as created');
  // What the addon's fchmod through the writer's descriptor did on the disk, told after the
  // handle's RELEASE was handled (two reader threads): the handle is gone.
  chmodSync(join(src, 'g.txt'), 0o600);
  t.throws(() => vfs.noteSetattr(fh, undefined), { code: 'EBADF' }, 'the handle is gone');
  vfs.noteChanged('/loc/g.txt');
  vfs.noteChanged('/loc/no-such-file'); // never throws
  let mode = 0;
  for (const start = Date.now(); Date.now() - start < 10_000; await new Promise((r) => setTimeout(r, 10))) {
    mode = (await vfs.getattr('/loc/g.txt')).mode & 0o7777;
    if (mode === 0o600) break;
  }
  t.equal(mode, 0o600, "the index follows the disk's mode");
});
