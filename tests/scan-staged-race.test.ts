import t from 'tap';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HashPool } from '../index/hash-pool';
import { scanLocalLocation } from '../index/scanner';
import { tempDir, vdfsOk } from './helpers/cli';
import { startVfsDaemon } from './helpers/vfs-model';

// A rescan takes the set of staged paths when it starts. A write-back file staged after that
// (and placed on the disk by an upload whose row is still pending: a second round after a chmod)
// was then "updated" from the disk's listing: the index lost the staged size, mode and mtime.
// Here the staging happens right before the walk lists the folder (the real pool's listing,
// the test's change run first), so the listing sees the disk's older file.
t.test('a rescan leaves a file staged after it began as the staged bytes describe it', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  mkdirSync(src);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '600']); // the row stays pending
  vdfsOk(home, ['location', 'add', 'wb', src, '--write-back']);
  vdfsOk(home, ['scan']);
  const { daemon, home: h } = await startVfsDaemon(t, home);
  const vfs = daemon.vfs;
  const loc = h.locations.get('wb');
  const pool = new HashPool(1, 1);
  t.teardown(() => pool.close());
  const list = pool.list.bind(pool);
  let staged = false;
  pool.list = async (d, ino) => {
    if (d === src && !staged) {
      staged = true;
      writeFileSync(join(src, 'f'), 'the disk has an older copy\n', { mode: 0o644 });
      const fh = await vfs.open('/wb/f', { write: true, create: true, truncate: true, mode: 0o644 });
      await vfs.write(fh, 0, Buffer.from('staged\n'));
      await vfs.release(fh);
      await vfs.chmod('/wb/f', 0o600);
      await vfs.setTimes('/wb/f', 'omit', { sec: 1_400_000_000, nsec: 0 });
    }
    return list(d, ino);
  };
  await scanLocalLocation(
    { db: h.db, entries: h.entries, blobs: h.blobs, locations: h.locations, pool, blockSize: h.config.blockSize, statePaths: h.statePaths, sharedConnection: true },
    loc,
    src,
  );
  t.ok(staged, 'the file was staged while the scan ran');
  t.equal(statSync(join(src, 'f')).size, 27, 'the disk still has its older copy (not uploaded yet)');
  daemon.vfs.resolver.invalidate();
  const a = await vfs.getattr('/wb/f');
  t.same([a.size, a.mode & 0o7777, Math.floor(a.mtimeMs / 1000)], [7, 0o600, 1_400_000_000], 'the mount shows the staged size, mode and mtime');
});
