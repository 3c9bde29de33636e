import t from 'tap';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlockCache } from '../cache/block-cache';
import { blockPool } from '../cache/block-pool';
import { openCacheStore } from '../index/cache-store';
import { filesUnder, TestBlockSource, type TestBlock } from './helpers/test-provider';

// BlockCache.take: blocks read back from the disk tier into reused buffers of the block pool,
// whose reference the caller gives back. A buffer handed out twice, or reused while held, would
// serve one block's bytes as another's; a damaged file must still never be served.

const BS = 64 * 1024;

function fileOf(dir: string, b: TestBlock): string {
  const hits = filesUnder(join(dir, 'blocks')).filter((f) => f.size === b.data.length && readFileSync(f.path).equals(b.data));
  if (hits.length !== 1) throw new Error(`expected one file holding ${b.key}, found ${hits.length}`);
  return hits[0].path;
}

/** A cache dir holding `blocks` from an earlier run (so nothing is in memory or verified yet). */
async function filled(dir: string, src: TestBlockSource, blocks: TestBlock[], opts: { writeQueueBytes?: number } = {}): Promise<BlockCache> {
  const first = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 16 * BS });
  for (const b of blocks) await first.get(b.key, src.fetcher(b.key), b.hash);
  await first.close();
  return BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 16 * BS, ...opts });
}

t.test('a block read back from disk comes in a pooled buffer of its own, given back by the caller', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const [a, b] = src.addRandomBlob(2 * BS);
  const c = await filled(dir, src, [a, b]);
  t.teardown(() => c.close());
  const live = blockPool.stats.live;
  const [x, y, z] = await Promise.all([c.take(a.key, src.fetcher(a.key), a.hash), c.take(a.key, src.fetcher(a.key), a.hash), c.take(b.key, src.fetcher(b.key))]);
  t.ok(x.equals(a.data) && y.equals(a.data) && z.equals(b.data), 'byte-exact');
  t.ok(blockPool.pooled(x) && blockPool.pooled(y) && blockPool.pooled(z), 'pooled');
  t.notOk(x.buffer === y.buffer && x.byteOffset === y.byteOffset, 'two readers of one block never share a buffer');
  t.equal(src.fetches, 2, 'no fetch: the earlier run filled the cache');
  t.match(c.stats(), { hits: 3, misses: 0, memoryBlocks: 0 });
  t.equal(c.verifiedFile(a.key) !== undefined, true, 'the block file is verified for native reads');
  blockPool.unref(x);
  const other = blockPool.take(BS, blockPool.slab_.blockSize);
  other.fill(0xee);
  t.ok(y.equals(a.data) && z.equals(b.data), 'a held buffer is not handed out again');
  for (const buf of [y, z, other]) blockPool.unref(buf);
  t.equal(blockPool.stats.live, live, 'every buffer is back in the pool');
});

for (const damage of ['flip', 'truncate'] as const) {
  t.test(`a ${damage === 'flip' ? 'bit flip' : 'truncation'} on disk is caught by take: refetched, and the buffer goes back`, async (t) => {
    const dir = join(t.testdir(), 'cache');
    const src = new TestBlockSource(BS);
    const [a] = src.addRandomBlob(BS);
    const c = await filled(dir, src, [a]);
    t.teardown(() => c.close());
    const path = fileOf(dir, a);
    if (damage === 'truncate') truncateSync(path, BS - 1);
    else {
      const buf = readFileSync(path);
      buf[BS >> 1] ^= 1;
      writeFileSync(path, buf);
    }
    const live = blockPool.stats.live;
    const got = await c.take(a.key, src.fetcher(a.key), a.hash);
    t.ok(got.equals(a.data), 'the right bytes');
    t.equal(src.fetches, 2, 'refetched from the source');
    t.equal(c.stats().corruptDropped, 1, 'a damaged or short file is counted as corrupt (as get counts it)');
    blockPool.unref(got);
    t.equal(blockPool.stats.live, live, 'the buffer the damaged file was read into went back');
    const again = await c.take(a.key, src.fetcher(a.key), a.hash);
    t.ok(again.equals(a.data));
    t.equal(src.fetches, 2, 'the refetched block is a hit');
    blockPool.unref(again);
  });
}

t.test('a pooled block waiting for the cache disk is shared with a reference, not copied, and outlives the write', async (t) => {
  process.env.VDFS_TEST_CACHE_WRITE_DELAY_MS = '200';
  t.teardown(() => {
    delete process.env.VDFS_TEST_CACHE_WRITE_DELAY_MS;
  });
  const dir = join(t.testdir(), 'cache');
  const c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 0, writeQueueBytes: 16 * BS });
  t.teardown(() => c.close());
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  const live = blockPool.stats.live;
  const streamed = blockPool.take(BS, blockPool.slab_.blockSize);
  a.data.copy(streamed);
  c.keep(a.key, streamed);
  blockPool.unref(streamed); // the stream's reference: the queue holds its own
  const got = await c.take(a.key, src.fetcher(a.key), a.hash);
  t.equal(got.buffer, streamed.buffer, 'the queued buffer itself');
  t.equal(got.byteOffset, streamed.byteOffset);
  await c.settled();
  t.ok(blockPool.pooled(got), 'still held by the taker after the write');
  const next = blockPool.take(BS, blockPool.slab_.blockSize);
  next.fill(0xaa);
  t.ok(got.equals(a.data), 'not reused while held');
  blockPool.unref(next);
  blockPool.unref(got);
  t.equal(blockPool.stats.live, live, 'back in the pool');
  t.equal(src.fetches, 0, 'never fetched');
  const copy = await c.get(a.key, src.fetcher(a.key), a.hash);
  t.notOk(blockPool.pooled(copy), 'get() still hands out buffers of its own');
});

t.test('a block take() fetches goes to the disk, not to the memory tier, and is a hit next time', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 16 * BS, writeQueueBytes: 16 * BS });
  t.teardown(() => c.close());
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  t.ok((await c.take(a.key, src.fetcher(a.key), a.hash)).equals(a.data), 'byte-exact');
  await c.settled();
  t.match(c.stats(), { misses: 1, memoryBlocks: 0, blocks: 1 });
  const again = await c.take(a.key, src.fetcher(a.key), a.hash);
  t.ok(again.equals(a.data));
  t.equal(src.fetches, 1, 'read back from the disk, not fetched again');
  blockPool.unref(again);
  await c.get(a.key, src.fetcher(a.key), a.hash);
  t.equal(c.stats().memoryBlocks, 1, 'get() still keeps what it reads in memory');
});

t.test('check: a cached block file is read back and verified for native reads, keeping nothing; a damaged one is dropped; a take meanwhile waits for it', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const [a, b, d] = src.addRandomBlob(3 * BS);
  const c = await filled(dir, src, [a, b]);
  t.teardown(() => c.close());
  const live = blockPool.stats.live;
  const bad = fileOf(dir, b);
  const bytes = readFileSync(bad);
  bytes[100] ^= 1;
  writeFileSync(bad, bytes);
  t.equal(c.verifiedFile(a.key), undefined, 'nothing is verified in a fresh run');
  const checking = c.check(a.key);
  const taken = c.take(a.key, src.fetcher(a.key), a.hash);
  t.equal(await checking, true, 'an intact block file passes');
  t.ok(c.verifiedFile(a.key), 'and is verified for native reads');
  const x = await taken;
  t.ok(x.equals(a.data), 'a take during the check has the right bytes');
  blockPool.unref(x);
  t.equal(await c.check(b.key), false, 'a bit flip fails the check');
  t.equal(c.verifiedFile(b.key), undefined, 'never handed out for native reads');
  t.equal(c.has(b.key), false, 'and the damaged block is dropped');
  t.equal(await c.check(d.key), false, 'a block not cached is not checked (nothing is fetched)');
  t.equal(src.fetches, 2, 'no fetch by check');
  t.match(c.stats(), { memoryBlocks: 0 });
  t.equal(blockPool.stats.live, live, 'every buffer is back in the pool');
});
