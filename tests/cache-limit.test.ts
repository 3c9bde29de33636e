import t from 'tap';
import { join } from 'node:path';
import { BlockCache } from '../cache/block-cache';
import { openCacheStore } from '../index/cache-store';
import { blockBytesOnDisk, TestBlockSource, type TestBlock } from './helpers/test-provider';

const BS = 64 * 1024;

t.test('hard byte limit: 3x the limit read with concurrent fetches; usage measured on disk never exceeds it', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const maxBytes = 8 * BS;
  const CONCURRENCY = 4;
  const c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes, memoryBytes: 2 * BS });
  t.teardown(() => c.close());
  const src = new TestBlockSource(BS);
  const blocks = [...src.addRandomBlob(24 * BS), ...src.addRandomBlob(BS / 2)]; // 3x the limit, plus a short block
  src.faults.delayMs = 3;

  let maxSeen = 0;
  let samples = 0;
  const sample = (): void => {
    // synchronous walk: the event loop cannot advance the cache while we measure
    maxSeen = Math.max(maxSeen, blockBytesOnDisk(dir));
    samples++;
  };
  const timer = setInterval(sample, 1);
  let wrong = 0;
  const round = async (order: TestBlock[]): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < order.length) {
          const b = order[next++];
          const got = await c.get(b.key, src.fetcher(b.key), b.hash);
          if (!got.equals(b.data)) wrong++;
          sample();
        }
      }),
    );
  };
  try {
    await round(blocks);
    // second round, shuffled, overlapping keys between workers: hits, misses and evictions mixed
    const shuffled = [...blocks, ...blocks.slice(0, 6)].sort(() => Math.random() - 0.5);
    await round(shuffled);
  } finally {
    clearInterval(timer);
  }
  sample();
  t.equal(wrong, 0, 'every get returned the right bytes');
  t.ok(src.maxInFlight > 1, `fetches really overlapped (max in flight ${src.maxInFlight})`);
  t.ok(samples > 50, `sampled often (${samples} samples)`);
  t.ok(maxSeen <= maxBytes + CONCURRENCY * BS, `never above limit + one block per concurrent fetch (max ${maxSeen})`);
  t.ok(maxSeen <= maxBytes, `in fact never above the limit itself (max ${maxSeen} <= ${maxBytes})`);
  t.ok(maxSeen > maxBytes - 2 * BS, `the cache was really filled (max ${maxSeen})`);
  const s = c.stats();
  t.ok(s.evictions >= blocks.length - 8, `evicted (${s.evictions})`);
  t.equal(s.bytes, blockBytesOnDisk(dir), 'the counter agrees with the filesystem when idle');
  t.ok(s.blocks <= 8);
});

async function fill(c: BlockCache, src: TestBlockSource, blocks: TestBlock[]): Promise<void> {
  for (const b of blocks) await c.get(b.key, src.fetcher(b.key), b.hash);
}

for (const memoryBytes of [0, 16 * BS]) {
  t.test(`LRU: the recently used block survives eviction (memory tier ${memoryBytes ? 'on' : 'off'})`, async (t) => {
    const c = await BlockCache.open({ openIndex: openCacheStore, dir: join(t.testdir(), 'cache'), maxBytes: 4 * BS, memoryBytes });
    t.teardown(() => c.close());
    const src = new TestBlockSource(BS);
    const [A, B, C, D, E] = src.addRandomBlob(5 * BS);
    await fill(c, src, [A, B, C, D]);
    await c.get(A.key, src.fetcher(A.key), A.hash); // A becomes most recent
    t.equal(src.fetches, 4, 'A was a hit');
    await c.get(E.key, src.fetcher(E.key), E.hash); // needs room: evicts B, not A
    t.same(c.lruKeys(), [C.key, D.key, A.key, E.key]);
    t.equal(c.stats().evictions, 1);
    if (memoryBytes === 0) t.equal(await c.peek(B.key), undefined, 'B is gone');
    for (const b of [A, C, D, E]) t.same(await c.get(b.key, src.fetcher(b.key), b.hash), b.data);
    t.equal(src.fetches, 5, 'A, C, D, E are all hits');
  });
}

t.test('restart: cached blocks and their recency survive close and reopen', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const [A, B, C, D, E] = src.addRandomBlob(5 * BS);
  let c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 4 * BS, memoryBytes: 16 * BS });
  await fill(c, src, [A, B, C, D]);
  await c.get(A.key, src.fetcher(A.key), A.hash); // a memory hit, right before close
  await c.close();

  c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 4 * BS, memoryBytes: 16 * BS });
  t.teardown(() => c.close());
  t.match(c.stats(), { blocks: 4, bytes: 4 * BS, hits: 0, misses: 0 });
  t.same(c.lruKeys(), [B.key, C.key, D.key, A.key], 'recency order kept');
  await c.get(E.key, src.fetcher(E.key), E.hash);
  t.equal(await c.peek(B.key), undefined, 'the least recently used (B) was evicted');
  for (const b of [A, C, D]) t.same(await c.get(b.key, src.fetcher(b.key), b.hash), b.data);
  t.equal(src.fetches, 5, 'A, C, D served from the previous run');
  t.match(c.stats(), { hits: 3, misses: 1, memoryHits: 0 });
});

t.test('reopening with a smaller limit evicts down to it, oldest first', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const blocks = src.addRandomBlob(6 * BS);
  let c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 8 * BS, memoryBytes: 0 });
  await fill(c, src, blocks);
  await c.close();
  c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 2 * BS, memoryBytes: 0 });
  t.teardown(() => c.close());
  t.same(c.lruKeys(), [blocks[4].key, blocks[5].key]);
  t.equal(blockBytesOnDisk(dir), 2 * BS);
});
