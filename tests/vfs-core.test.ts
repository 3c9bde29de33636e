import t from 'tap';
import { closeSync, fchmodSync, mkdirSync, openSync, renameSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { b3sum, tempDir, vdfsOk } from './helpers/cli';
import { openVfsInProcess } from './helpers/vfs-in-process';
import { blake3Hex } from '../cache/checksum';
import { HashPool } from '../index/hash-pool';
import { scanLocalLocation } from '../index/scanner';

/** The VFS core in-process, without the kernel: real home, real block cache, real files. */
async function open(t: Parameters<typeof tempDir>[0], layout: Record<string, Record<string, Buffer>>) {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  vdfsOk(home, ['init']);
  for (const [loc, files] of Object.entries(layout)) {
    mkdirSync(join(dir, loc));
    for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, loc, name), data);
    vdfsOk(home, ['location', 'add', loc, join(dir, loc)]);
  }
  vdfsOk(home, ['scan']);
  return { dir, ...(await openVfsInProcess(t, home)) };
}

async function readAll(vfs: Awaited<ReturnType<typeof openVfsInProcess>>['vfs'], path: string, chunk = 200_000): Promise<Buffer> {
  const fh = await vfs.open(path);
  const parts: Buffer[] = [];
  try {
    for (let off = 0; ;) {
      const b = await vfs.read(fh, off, chunk);
      if (b.length === 0) break;
      parts.push(b);
      off += b.length;
    }
  } finally {
    await vfs.release(fh);
  }
  return Buffer.concat(parts);
}

t.test('reads of an offline location go through the block cache from another replica, verified', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 123);
  const { dir, vfs, blocks } = await open(t, { a: { 'f.bin': data }, b: { 'g.bin': data } });
  renameSync(join(dir, 'a'), join(dir, 'a-unplugged'));
  const got = await readAll(vfs, '/a/f.bin');
  t.equal(blake3Hex(got), b3sum(join(dir, 'b', 'g.bin')), 'content read from b');
  const s1 = blocks.cache!.stats();
  t.equal(s1.misses, 4, 'four blocks fetched once each');
  await readAll(vfs, '/a/f.bin', 65536);
  const s2 = blocks.cache!.stats();
  t.equal(s2.misses, 4, 'the second read is served from the cache');
  t.ok(s2.hits > s1.hits);
  const fh = await vfs.open('/a/f.bin');
  const mid = await vfs.read(fh, 1024 * 1024 - 10, 20);
  t.same(mid, data.subarray(1024 * 1024 - 10, 1024 * 1024 + 10), 'a range across a block boundary');
  t.equal((await vfs.read(fh, data.length - 1, 100)).length, 1, 'the last byte');
  t.equal((await vfs.read(fh, data.length + 5, 100)).length, 0, 'past EOF is empty');
  await vfs.release(fh);
});

t.test('a replica whose bytes do not match the hash is skipped for the next one', async (t) => {
  const data = randomBytes(2 * 1024 * 1024);
  const { dir, vfs } = await open(t, { a: { 'f.bin': data }, b: { 'bad.bin': data }, c: { 'good.bin': data } });
  // Corrupt b in place, keeping size and mtime (silent bit rot the version check cannot see).
  const bad = join(dir, 'b', 'bad.bin');
  const st = statSync(bad);
  const fd = openSync(bad, 'r+');
  writeSync(fd, Buffer.from([data[1000] ^ 0xff]), 0, 1, 1000);
  closeSync(fd);
  utimesSync(bad, st.atime, st.mtime);
  renameSync(join(dir, 'a'), join(dir, 'a-unplugged'));
  const got = await readAll(vfs, '/a/f.bin');
  t.equal(blake3Hex(got), blake3Hex(data), 'only verified bytes are returned');
});

t.test('no reachable replica: EHOSTDOWN, and the tree stays visible', async (t) => {
  const { dir, vfs } = await open(t, { a: { 'only.txt': Buffer.from('lonely') } });
  renameSync(join(dir, 'a'), join(dir, 'a-unplugged'));
  const attr = await vfs.getattr('/a/only.txt');
  t.equal(attr.size, 6, 'size still known');
  await t.rejects(
    vfs.open('/a/only.txt').then((fh) => vfs.read(fh, 0, 10)),
    { code: 'EHOSTDOWN' },
  );
  t.same(
    (await vfs.readdir('/a')).map((d) => d.name),
    ['only.txt'],
  );
});

t.test('errors: ENOENT, ENOTDIR, EISDIR, EROFS, EXDEV, EINVAL', async (t) => {
  const { vfs } = await open(t, { a: { 'f.txt': Buffer.from('x') }, b: {} });
  await t.rejects(vfs.getattr('/a/missing'), { code: 'ENOENT' });
  await t.rejects(vfs.getattr('/nope'), { code: 'ENOENT' });
  await t.rejects(vfs.readdir('/a/f.txt'), { code: 'ENOTDIR' });
  await t.rejects(vfs.open('/a'), { code: 'EISDIR' });
  await t.rejects(vfs.mkdir('/newloc'), { code: 'EROFS' });
  await t.rejects(vfs.mkdir('/.vdfs/x'), { code: 'EROFS' });
  await t.rejects(vfs.rename('/a/f.txt', '/b/f.txt'), { code: 'EXDEV' });
  await t.rejects(vfs.getattr('/a/../../etc/passwd'), { code: 'EINVAL' });
  await t.rejects(vfs.mkdir('/a/' + 'x'.repeat(300)), { code: 'ENAMETOOLONG' });
  await t.rejects(vfs.read(12345, 0, 1), { code: 'EBADF' });
  await t.rejects(vfs.getxattr('/a/f.txt', 'user.other'), { code: 'ENODATA' });
});

t.test('write, rename and re-hash through the core', async (t) => {
  const { dir, vfs, home } = await open(t, { a: {} });
  const fh = await vfs.open('/a/new.txt', { write: true, create: true });
  await vfs.write(fh, 0, Buffer.from('hello '));
  await vfs.write(fh, 6, Buffer.from('world'));
  t.equal((await vfs.getattr('/a/new.txt')).size, 11, 'live size while open');
  await vfs.release(fh);
  await vfs.rename('/a/new.txt', '/a/renamed.txt');
  await t.rejects(vfs.getattr('/a/new.txt'), { code: 'ENOENT' });
  let hash: string | null = null;
  // Polled up to 20 s: in-process, the hash worker is TypeScript compiled at its start (~2.5 s
  // on a loaded machine); the daemon runs it from dist/ in milliseconds.
  for (let i = 0; i < 400 && !hash; i++) {
    await new Promise((r) => setTimeout(r, 50));
    hash = home.entries.resolve(home.locations.get('a').id, 'renamed.txt')?.hash ?? null;
  }
  t.equal(hash, b3sum(join(dir, 'a', 'renamed.txt')), 're-hashed after close');
  t.equal((await vfs.getxattr('/a/renamed.txt', 'user.vdfs.hash')).toString(), hash);
  await vfs.patchProps('/a/renamed.txt', [{ ns: 'urn:x', name: 'color', value: 'blue' }], []);
  t.same(await vfs.getProps('/a/renamed.txt'), [{ ns: 'urn:x', name: 'color', value: 'blue' }]);
});

t.test('a folder renamed while a file in it is being hashed: the file gets its hash at the new name', async (t) => {
  const { dir, vfs, home } = await open(t, { a: {} });
  await vfs.mkdir('/a/d');
  const fh = await vfs.open('/a/d/new.txt', { write: true, create: true });
  await vfs.write(fh, 0, randomBytes(300_000));
  await vfs.release(fh); // queues the hash (in-process the worker takes seconds to start)
  await vfs.rename('/a/d', '/a/e');
  const loc = home.locations.get('a').id;
  let hash: string | null = null;
  for (let i = 0; i < 400 && !hash; i++) {
    await new Promise((r) => setTimeout(r, 50));
    hash = home.entries.resolve(loc, 'e/new.txt')?.hash ?? null;
  }
  t.equal(hash, b3sum(join(dir, 'a', 'e', 'new.txt')), 'hashed at its new name');
});

t.test('rename over one name of a hard-linked file: its other name shows the link count the disk has', async (t) => {
  const { dir, vfs } = await open(t, { a: { 'f.txt': Buffer.from('one'), 'h.txt': Buffer.from('two') } });
  await vfs.link('/a/f.txt', '/a/g.txt');
  t.equal((await vfs.getattr('/a/f.txt')).nlink, statSync(join(dir, 'a', 'f.txt')).nlink, 'two names, as on the disk');
  await vfs.rename('/a/h.txt', '/a/g.txt');
  const real = statSync(join(dir, 'a', 'f.txt')).nlink;
  t.equal(real, 1, 'the disk dropped the replaced link');
  t.equal((await vfs.getattr('/a/f.txt')).nlink, real, 'the other name shows it at once');
});

// The daemon's start-up rescan writes on the daemon's own connection, which the resolver's
// data_version check does not see. A LOOKUP that missed a name, then a rescan that indexed it
// (made meanwhile through the mount), then MKDIR's refresh finding the row already right:
// MKDIR answered ENOENT from the cached miss (fuse-posix-errors in CI, 3 runs in 60 here).
t.test('a name a rescan indexed after a lookup missed it is found once the writer refreshes it', async (t) => {
  const { dir, vfs, home } = await open(t, { a: {} });
  await t.rejects(vfs.getattr('/a/d'), { code: 'ENOENT' }, 'missing, and the miss is cached');
  mkdirSync(join(dir, 'a', 'd'));
  const pool = new HashPool(1);
  const ctx = { db: home.db, entries: home.entries, blobs: home.blobs, locations: home.locations, pool, blockSize: home.config.blockSize };
  await scanLocalLocation(ctx, home.locations.get('a'), join(dir, 'a'));
  await pool.close();
  t.ok(home.entries.resolve(home.locations.get('a').id, 'd'), 'the rescan indexed it');
  await vfs.writer.refresh(home.locations.get('a'), 'd', true, true);
  await t.resolves(vfs.getattr('/a/d'), 'found after the refresh, not the cached miss');
});

// The FUSE addon writes through nativeWriteFd and, for a writer without CAP_FSETID, clears
// setuid/setgid there (fchmod) without telling JS: getattr of the open file must show the disk's mode.
t.test("an open writer's mode changed on its descriptor shows at once, not the index's", async (t) => {
  const { dir, vfs } = await open(t, { a: {} });
  const fh = await vfs.open('/a/tool', { write: true, create: true, mode: 0o4755 });
  t.equal((await vfs.getattr('/a/tool')).mode, 0o4755, 'created setuid');
  const fd = vfs.nativeWriteFd(fh);
  if (fd === undefined) throw new Error('a local file open for writing has a native descriptor');
  writeSync(fd, 'new bytes');
  vfs.noteWritten(fh, 0, 9);
  fchmodSync(fd, 0o755); // what the addon's kill_suidgid does
  t.equal((await vfs.getattr('/a/tool')).mode, 0o755, 'getattr shows the setuid bit gone');
  t.equal((await vfs.getattr('/a/tool')).size, 9, 'and the size written');
  await vfs.release(fh);
  t.equal((await vfs.getattr('/a/tool')).mode, statSync(join(dir, 'a', 'tool')).mode & 0o7777, 'after the close, the index has the disk mode');
});
