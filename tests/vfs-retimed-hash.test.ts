import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { b3sum, tempDir, vdfsOk } from './helpers/cli';
import { openVfsInProcess } from './helpers/vfs-in-process';
import type { HashPool } from '../index/hash-pool';

// `rsync -a` writes each file under a temporary name, closes it, sets its times by name, and
// renames it. Only the mtime moves after the close, so the hash read at the close (or the one
// hash the pool reads a moment later) must serve the final name: each file hashed once.

async function open(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  vdfsOk(home, ['init']);
  mkdirSync(join(dir, 'a'));
  vdfsOk(home, ['location', 'add', 'a', join(dir, 'a')]);
  vdfsOk(home, ['scan']);
  const opened = await openVfsInProcess(t, home);
  // The VFS's real hash pool, its calls counted (each is a full read of a file).
  const pool = (opened.vfs as unknown as { hashPool: HashPool }).hashPool;
  const calls: string[] = [];
  const hashFile = pool.hashFile.bind(pool);
  pool.hashFile = (path, blockSize) => {
    calls.push(path);
    return hashFile(path, blockSize);
  };
  return { dir, calls, ...opened };
}

/** The rsync receiver's steps for one file. */
async function rsyncLike(vfs: Awaited<ReturnType<typeof open>>['vfs'], data: Buffer, name: string): Promise<void> {
  const tmp = `/a/.${name}.XyZ12`;
  const fh = await vfs.open(tmp, { write: true, create: true, exclusive: true, mode: 0o600, kernel: true });
  await vfs.write(fh, 0, data);
  await vfs.release(fh);
  await vfs.setTimes(tmp, 'now', { sec: 1_577_836_800, nsec: 123_456_789 }, true);
  await vfs.chmod(tmp, 0o644, true);
  await vfs.rename(tmp, `/a/${name}`, { kernel: true });
}

t.test('a small file whose times are set after its close keeps the hash read at the close', async (t) => {
  const { dir, vfs, home, calls } = await open(t);
  await rsyncLike(vfs, randomBytes(5_000), 'small.c');
  const e = home.entries.resolve(home.locations.get('a').id, 'small.c');
  t.equal(e?.mtimeSec, 1_577_836_800, 'the index has the times set');
  t.equal(e?.hash, b3sum(join(dir, 'a', 'small.c')), 'and the hash, at once, of the bytes on the disk');
  await new Promise((r) => setTimeout(r, 500));
  t.same(calls, [], 'the hash pool never read it again');
});

t.test('a big file retimed and renamed right after its close is hashed once, at its final name', async (t) => {
  const { dir, vfs, home, calls } = await open(t);
  await rsyncLike(vfs, randomBytes(3 * 1024 * 1024 + 7), 'big.bin');
  const loc = home.locations.get('a').id;
  let hash: string | null = null;
  // In-process the hash worker is TypeScript compiled at its start (seconds on a loaded machine).
  for (let i = 0; i < 400 && !hash; i++) {
    await new Promise((r) => setTimeout(r, 50));
    hash = home.entries.resolve(loc, 'big.bin')?.hash ?? null;
  }
  t.equal(hash, b3sum(join(dir, 'a', 'big.bin')), 'hashed');
  await new Promise((r) => setTimeout(r, 500));
  t.equal(calls.length, 1, `read once by the hash pool (${calls.length})`);
  t.equal(home.entries.resolve(loc, 'big.bin')?.hash, hash, 'the hash stays');
});

t.test('a file changed on the disk before its times are set through the VFS loses its old hash', async (t) => {
  const { dir, vfs, home } = await open(t);
  await rsyncLike(vfs, randomBytes(5_000), 'f.c');
  const loc = home.locations.get('a').id;
  const first = home.entries.resolve(loc, 'f.c')?.hash;
  t.ok(first, 'hashed');
  // Same size, new bytes, written behind the VFS's back: the version before the utimens is not the hashed one.
  writeFileSync(join(dir, 'a', 'f.c'), randomBytes(5_000));
  await vfs.setTimes('/a/f.c', 'now', { sec: 1_600_000_000, nsec: 0 }, true);
  const e = home.entries.resolve(loc, 'f.c');
  t.not(e?.hash, first, 'the old hash is not kept');
  let hash: string | null = e?.hash ?? null;
  for (let i = 0; i < 400 && !hash; i++) {
    await new Promise((r) => setTimeout(r, 50));
    hash = home.entries.resolve(loc, 'f.c')?.hash ?? null;
  }
  t.equal(hash, b3sum(join(dir, 'a', 'f.c')), 'the new bytes are hashed');
});
