import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BlockCache } from '../cache/block-cache';
import { openCacheStore } from '../index/cache-store';
import { FsError } from '../core/fs-error';
import { blockBytesOnDisk, filesUnder, TestBlockSource } from './helpers/test-provider';

const BS = 64 * 1024;

async function openCache(t: { teardown(fn: () => unknown): void }, dir: string, o: { maxBytes?: number; memoryBytes?: number } = {}): Promise<BlockCache> {
  const c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: o.maxBytes ?? 64 * BS, memoryBytes: o.memoryBytes ?? 16 * BS });
  t.teardown(() => c.close());
  return c;
}

t.test('hit/miss accounting: miss, memory hit, disk hit after reopen', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const [a, b] = src.addRandomBlob(BS + 100);
  let c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 16 * BS });
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data, 'first get returns the bytes');
  t.match(c.stats(), { hits: 0, memoryHits: 0, misses: 1, blocks: 1, bytes: BS, fetchedBytes: BS });
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data);
  t.match(c.stats(), { hits: 1, memoryHits: 1, misses: 1 });
  t.same(await c.get(b.key, src.fetcher(b.key)), b.data, 'short last block, no expected hash');
  t.match(c.stats(), { misses: 2, blocks: 2, bytes: BS + 100, fetchedBytes: BS + 100 });
  t.equal(src.fetches, 2);
  await c.close();
  await t.rejects(c.get(a.key, src.fetcher(a.key)), { code: 'EIO' }, 'closed cache refuses');

  c = await openCache(t, dir, { memoryBytes: 0 });
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data);
  t.same(await c.get(b.key, src.fetcher(b.key)), b.data);
  t.match(c.stats(), { hits: 2, memoryHits: 0, misses: 0, fetchedBytes: 0 }, 'served from disk');
  t.equal(src.fetches, 2, 'nothing refetched');
});

t.test('single-flight: 10 concurrent gets make one fetch and get the same bytes', async (t) => {
  const c = await openCache(t, join(t.testdir(), 'cache'));
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  src.faults.delayMs = 50;
  const got = await Promise.all(Array.from({ length: 10 }, () => c.get(a.key, src.fetcher(a.key), a.hash)));
  t.equal(src.fetches, 1);
  for (const g of got) t.same(g, a.data);
  t.match(c.stats(), { misses: 1, shared: 9, inflight: 0, blocks: 1 });
});

t.test('failed fetch: waiters share the error, nothing cached, next get fetches again', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const c = await openCache(t, dir);
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  src.faults.delayMs = 20;
  src.faults.fail = 1;
  src.faults.failCode = 'EHOSTDOWN';
  const results = await Promise.allSettled(Array.from({ length: 3 }, () => c.get(a.key, src.fetcher(a.key), a.hash)));
  t.equal(src.fetches, 1);
  const errs = results.map((r) => (r.status === 'rejected' ? r.reason : undefined));
  t.ok(errs[0] instanceof FsError);
  t.equal((errs[0] as FsError).code, 'EHOSTDOWN');
  t.equal(errs[1], errs[0], 'waiter gets the same error');
  t.equal(errs[2], errs[0], 'waiter gets the same error');
  t.match(c.stats(), { blocks: 0, bytes: 0, inflight: 0 });
  t.equal(await c.peek(a.key), undefined, 'not cached');
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data, 'not poisoned');
  t.equal(src.fetches, 2);

  // a plain (non-FsError) failure from the source is wrapped
  const [b] = src.addRandomBlob(100);
  src.faults.throwPlain = 1;
  const err = await c.get(b.key, src.fetcher(b.key)).catch((e: unknown) => e);
  t.ok(err instanceof FsError, 'wrapped in FsError');
  t.equal((err as FsError).code, 'EIO');
  src.faults.throwPlain = 1;
  src.faults.plainCode = 'ECONNREFUSED';
  await t.rejects(c.get(b.key, src.fetcher(b.key)), { code: 'EHOSTDOWN' });
  t.same(await c.get(b.key, src.fetcher(b.key)), b.data);
});

t.test('corrupt fetched block: EIO, nothing stored in memory or on disk', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const c = await openCache(t, dir);
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  src.faults.corrupt = 1;
  src.faults.delayMs = 10;
  const r = await Promise.allSettled([c.get(a.key, src.fetcher(a.key), a.hash), c.get(a.key, src.fetcher(a.key), a.hash)]);
  for (const x of r) t.match(x, { status: 'rejected', reason: { code: 'EIO' } });
  t.match(c.stats(), { blocks: 0, bytes: 0, verifyFailures: 1, memoryBlocks: 0 });
  t.equal(blockBytesOnDisk(dir), 0, 'no block bytes on disk');
  t.equal(await c.peek(a.key), undefined);
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data, 'a clean refetch succeeds');
  t.equal(blockBytesOnDisk(dir), BS);
});

t.test('put and peek; peek never fetches; expected hash mismatch is not returned', async (t) => {
  const c = await openCache(t, join(t.testdir(), 'cache'), { memoryBytes: 0 });
  const src = new TestBlockSource(BS);
  const [a, b] = src.addRandomBlob(2 * BS);
  t.equal(await c.peek(a.key), undefined);
  await c.put(a.key, a.data);
  t.same(await c.peek(a.key), a.data);
  t.same(await c.peek(a.key, a.hash), a.data);
  t.equal(await c.peek(a.key, b.hash), undefined, 'content under the key does not match: dropped');
  t.equal(c.stats().blocks, 0);
  t.equal(src.fetches, 0);
});

t.test('a block larger than the whole limit is returned but not stored', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const c = await openCache(t, dir, { maxBytes: BS - 1, memoryBytes: 0 });
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data);
  t.match(c.stats(), { blocks: 0, bytes: 0 });
  t.equal(blockBytesOnDisk(dir), 0);
});

t.test('clear removes everything, also across a restart', async (t) => {
  const dir = join(t.testdir(), 'cache');
  let c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 16 * BS });
  const src = new TestBlockSource(BS);
  const blocks = src.addRandomBlob(5 * BS);
  for (const b of blocks) await c.get(b.key, src.fetcher(b.key), b.hash);
  t.equal(filesUnder(join(dir, 'blocks')).length, 5);
  await c.clear();
  t.match(c.stats(), { blocks: 0, bytes: 0, memoryBlocks: 0 });
  t.equal(filesUnder(join(dir, 'blocks')).length, 0, 'no block files left');
  t.equal(await c.peek(blocks[0].key), undefined);
  t.same(await c.get(blocks[0].key, src.fetcher(blocks[0].key), blocks[0].hash), blocks[0].data);
  t.equal(src.fetches, 6, 'refetched after clear');
  await c.close();
  c = await openCache(t, dir);
  t.match(c.stats(), { blocks: 1, bytes: BS }, 'only the block fetched after clear survives the restart');
});

t.test('cache-side disk trouble never fails a get: the block is returned, not stored', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const c = await openCache(t, dir, { memoryBytes: 0 });
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  // a file in the way of every fan-out directory: every block write now fails (EEXIST/ENOTDIR)
  for (let i = 0; i < 256; i++) {
    const sub = join(dir, 'blocks', i.toString(16).padStart(2, '0'));
    rmSync(sub, { recursive: true, force: true }); // made when the cache opened
    writeFileSync(sub, 'in the way');
  }
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data);
  t.match(c.stats(), { writeErrors: 1, blocks: 0, bytes: 0 });
  t.same(
    filesUnder(join(dir, 'blocks')).filter((f) => f.size !== 'in the way'.length),
    [],
    'no block file written',
  );
});

t.test('clear() while a fetch is in flight: the late block is not left on disk unaccounted', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const c = await openCache(t, dir, { memoryBytes: 0 });
  const src = new TestBlockSource(BS);
  const [a, b] = src.addRandomBlob(2 * BS);
  await c.get(b.key, src.fetcher(b.key), b.hash);
  src.faults.delayMs = 30;
  const fetchA = src.fetcher(a.key);
  let fetching = false;
  const pending = c.get(
    a.key,
    () => {
      fetching = true;
      return fetchA();
    },
    a.hash,
  );
  // Really in flight: the fetch has started (and is delayed 30 ms by the source).
  while (!fetching) await new Promise((r) => setImmediate(r));
  await c.clear();
  t.same(await pending, a.data, 'the caller still gets its bytes');
  t.equal(c.stats().bytes, blockBytesOnDisk(dir), 'counter and filesystem agree');
  t.equal(c.stats().blocks, filesUnder(join(dir, 'blocks')).length);
  t.equal(await c.peek(b.key), undefined, 'the block cached before clear is gone');
});

// The cache's disk filling up (a small USB stick, a full home): a block that does not fit is
// returned to the reader all the same, and no half-written block file is left behind it.
t.test('a full cache disk: every get returns its bytes, no partial block file is left', async (t) => {
  // Outside tap's fixture folder, which tap removes before the teardowns unmount.
  const fs = mkdtempSync(join(tmpdir(), 'vdfs-small-fs-'));
  // 1 MiB of tmpfs for up to 64 blocks of 64 KiB: ENOSPC part way through.
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', fs]);
  t.equal(m.status, 0, `mount a 1 MiB tmpfs (root): ${m.stderr}`);
  t.teardown(() => {
    spawnSync('umount', ['-l', fs]);
    rmSync(fs, { recursive: true, force: true });
  });
  const dir = join(fs, 'cache');
  const c = await openCache(t, dir, { memoryBytes: 0 });
  const src = new TestBlockSource(BS);
  const blocks = src.addRandomBlob(40 * BS + 123);
  for (const b of blocks) t.same(await c.get(b.key, src.fetcher(b.key), b.hash), b.data, `block ${b.key} returned`);
  const s = c.stats();
  t.ok(s.writeErrors > 0, `some blocks did not fit (writeErrors ${s.writeErrors})`);
  t.ok(s.blocks > 0, `some did (${s.blocks})`);
  const files = filesUnder(join(dir, 'blocks'));
  t.equal(files.length, s.blocks, 'one file per stored block, none left by a failed write');
  t.same(
    files.filter((f) => f.size !== BS && f.size !== 123),
    [],
    'every file left is a whole block',
  );
  t.equal(blockBytesOnDisk(dir), s.bytes, 'the bytes on disk are the bytes accounted');
  for (const b of blocks) t.same(await c.get(b.key, src.fetcher(b.key), b.hash), b.data, `block ${b.key} again`);
});
