import t from 'tap';
import { existsSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlockCache } from '../cache/block-cache';
import { openCacheStore } from '../index/cache-store';
import { filesUnder, TestBlockSource, type TestBlock } from './helpers/test-provider';
import { b3sum } from './helpers/cli';

const BS = 64 * 1024;

/** The file on disk holding `b`, found by content (no knowledge of the cache's layout). */
function fileOf(dir: string, b: TestBlock): string {
  const hits = filesUnder(join(dir, 'blocks')).filter((f) => f.size === b.data.length && readFileSync(f.path).equals(b.data));
  if (hits.length !== 1) throw new Error(`expected one file holding ${b.key}, found ${hits.length}`);
  return hits[0].path;
}

function flipByte(path: string, at: number): void {
  const buf = readFileSync(path);
  buf[at] ^= 0x80;
  writeFileSync(path, buf);
}

// memoryBytes 0 so every read goes to disk; the damage is done behind the cache's back.
for (const withHash of [true, false]) {
  const how = withHash ? 'with expected hash' : 'by stored checksum only';
  t.test(`bit flip on disk is detected ${how}, dropped and refetched`, async (t) => {
    const dir = join(t.testdir(), 'cache');
    const c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 0 });
    t.teardown(() => c.close());
    const src = new TestBlockSource(BS);
    const [a] = src.addRandomBlob(BS);
    const exp = withHash ? a.hash : undefined;
    await c.get(a.key, src.fetcher(a.key), exp);
    flipByte(fileOf(dir, a), 12345);
    t.same(await c.get(a.key, src.fetcher(a.key), exp), a.data, 'correct bytes returned');
    t.equal(src.fetches, 2, 'refetched');
    t.match(c.stats(), { corruptDropped: 1, blocks: 1, bytes: BS });
    t.ok(readFileSync(fileOf(dir, a)).equals(a.data), 'the file on disk was replaced with good bytes');
    t.same(await c.get(a.key, src.fetcher(a.key), exp), a.data);
    t.equal(src.fetches, 2, 'and is a hit again');
  });
}

t.test('truncated block file is detected and refetched; peek returns undefined for it', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 0 });
  t.teardown(() => c.close());
  const src = new TestBlockSource(BS);
  const [a, b] = src.addRandomBlob(2 * BS);
  await c.get(a.key, src.fetcher(a.key));
  await c.get(b.key, src.fetcher(b.key), b.hash);
  truncateSync(fileOf(dir, a), 1000);
  truncateSync(fileOf(dir, b), 0);
  t.equal(await c.peek(b.key, b.hash), undefined, 'peek does not return the empty file');
  t.same(await c.get(a.key, src.fetcher(a.key)), a.data);
  t.same(await c.get(b.key, src.fetcher(b.key), b.hash), b.data);
  t.equal(src.fetches, 4);
  t.match(c.stats(), { corruptDropped: 2, blocks: 2, bytes: 2 * BS });
});

t.test('damage done while closed is caught after a restart; a deleted file is a plain miss', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const [a, b] = src.addRandomBlob(2 * BS);
  let c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 16 * BS });
  await c.get(a.key, src.fetcher(a.key), a.hash);
  await c.get(b.key, src.fetcher(b.key), b.hash);
  await c.close();
  flipByte(fileOf(dir, a), 0);
  rmSync(fileOf(dir, b));
  c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 16 * BS });
  t.teardown(() => c.close());
  t.equal(c.stats().blocks, 1, 'the row of the missing file was dropped at open');
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data);
  t.same(await c.get(b.key, src.fetcher(b.key), b.hash), b.data);
  t.equal(src.fetches, 4);
  t.match(c.stats(), { corruptDropped: 1, blocks: 2, bytes: 2 * BS });
});

t.test('open removes temp files and unknown block files left by a crash', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  let c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 0 });
  await c.get(a.key, src.fetcher(a.key), a.hash);
  await c.close();
  const aFile = fileOf(dir, a);
  // a temp file left by an earlier version (which wrote blocks to tmp/ and renamed them), a
  // block file (complete or cut by the crash) whose index row was never written, and the
  // trash of an interrupted clear()
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  writeFileSync(join(dir, 'tmp', 'deadbeef.partial'), Buffer.alloc(1000, 1));
  mkdirSync(join(dir, 'blocks', 'ab'), { recursive: true });
  const orphan = join(dir, 'blocks', 'ab', 'ab'.padEnd(64, '0'));
  writeFileSync(orphan, Buffer.alloc(BS, 2));
  mkdirSync(join(dir, 'trash-123'));
  writeFileSync(join(dir, 'trash-123', 'x'), 'x');
  c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 0 });
  t.teardown(() => c.close());
  t.notOk(existsSync(orphan), 'orphan block removed');
  t.same(filesUnder(join(dir, 'tmp')), [], 'temp files removed');
  t.notOk(existsSync(join(dir, 'trash-123')), 'trash removed');
  t.ok(existsSync(aFile), 'the known block stays');
  t.match(c.stats(), { blocks: 1, bytes: BS });
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data);
  t.equal(src.fetches, 1);
});

t.test('an unreadable or corrupt index file is recreated, and its blocks discarded', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  let c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 0 });
  await c.get(a.key, src.fetcher(a.key), a.hash);
  await c.close();
  writeFileSync(join(dir, 'index.db'), 'this is not a database, just garbage bytes '.repeat(200));
  c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 0 });
  t.teardown(() => c.close());
  t.match(c.stats(), { blocks: 0, bytes: 0 });
  t.equal(filesUnder(join(dir, 'blocks')).length, 0, 'unknown files removed, so the limit still holds');
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data);
});

t.test('a stray file under a block file name (a write that could not be unlinked) does not keep the block out of the cache', async (t) => {
  const dir = join(t.testdir(), 'cache');
  const src = new TestBlockSource(BS);
  const [a] = src.addRandomBlob(BS);
  const c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 64 * BS, memoryBytes: 0 });
  t.teardown(() => c.close());
  // The block file's name is BLAKE3 of the key (b3sum of a file holding it), fanned out on its first byte.
  const keyFile = join(t.testdir(), 'key');
  writeFileSync(keyFile, a.key);
  const name = b3sum(keyFile);
  mkdirSync(join(dir, 'blocks', name.slice(0, 2)), { recursive: true });
  writeFileSync(join(dir, 'blocks', name.slice(0, 2), name), Buffer.alloc(100, 7));
  t.same(await c.get(a.key, src.fetcher(a.key), a.hash), a.data);
  t.match(c.stats(), { blocks: 1, bytes: BS, writeErrors: 0 }, 'stored');
  t.ok(readFileSync(join(dir, 'blocks', name.slice(0, 2), name)).equals(a.data), 'the stray file was replaced by the block');
});
