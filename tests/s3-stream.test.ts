import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { BlockCache } from '../cache/block-cache';
import { openCacheStore } from '../index/cache-store';
import { hashStream } from '../index/remote-scan';
import { BlobReader, type ReplicaSource } from '../mount/vfs/blob-reader';
import { VersionReader } from '../mount/vfs/version-reader';
import { readAheadBudget } from '../mount/vfs/block-reader';
import { blockPool, WRITE_QUEUE_BYTES } from '../cache/block-pool';
import { fetchVerified } from '../mount/vfs/verified-fetch';
import { S3Provider } from '../providers/s3/s3-provider';
import { b3sum, tempDir } from './helpers/cli';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startS3Server, type S3TestServer } from './helpers/s3-server';
import { filesBytesAtOnce } from './helpers/test-provider';

// Streamed read-ahead windows (#17) against a real s3rver, through a fault proxy that records
// every GET's Range header. Readers read the way FUSE does: 128 KiB at a time, in order.

const MiB = 1 << 20;
const READ = 128 * 1024;
const data = randomBytes(12 * MiB + 777);
const isGet = (req: IncomingMessage) => req.method === 'GET' && !req.url!.includes('list-type');

let s3: S3TestServer;
const proxies: FaultProxy[] = [];
const ranges = new Map<FaultProxy, string[]>();
let hash: { hash: string; blockHashes: Buffer; size: number };

async function provider(): Promise<{ p: S3Provider; proxy: FaultProxy; seen: string[] }> {
  const proxy = await startFaultProxy(s3.endpoint);
  const seen: string[] = [];
  proxies.push(proxy);
  ranges.set(proxy, seen);
  const p = new S3Provider(
    { bucket: s3.bucket, prefix: '', endpoint: proxy.endpoint, region: 'us-east-1' },
    { retry: { budgetMs: 3000 }, timeouts: { idleMs: 1500, connectMs: 1000 } },
  );
  return { p, proxy, seen };
}

/** Watches requests without faulting them: a match function that records and declines. */
function watch(proxy: FaultProxy, seen: string[]): void {
  proxy.clear();
  proxy.inject(
    { kind: 'delay', ms: 0 },
    {
      times: 1,
      match: (req) => {
        if (isGet(req)) seen.push(String(req.headers.range ?? ''));
        return false;
      },
    },
  );
}

function s3Source(label: string, p: S3Provider, version: string): ReplicaSource {
  return {
    label,
    size: data.length,
    versionChecked: true,
    read: (o, n) => p.readRange('obj.bin', o, n, { version }),
    stream: (o, n) => p.readRangeStream('obj.bin', o, n, { version }),
  };
}

async function readAll(r: { read(o: number, n: number): Promise<Buffer> }, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let o = 0; o < size; o += READ) parts.push(Buffer.from(await r.read(o, READ)));
  return Buffer.concat(parts);
}

function sameAsB3sum(dir: string, got: Buffer, name: string): [string, string] {
  const f = join(dir, name);
  writeFileSync(f, got);
  return [b3sum(f), b3sum(join(dir, 'orig'))];
}

t.before(async () => {
  s3 = await startS3Server();
  await s3.put('obj.bin', data);
  const { p } = await provider();
  hash = await hashStream(await p.readStream('obj.bin'), MiB);
  await p.close();
});
t.teardown(async () => {
  for (const p of proxies) await p.close();
  await s3?.cleanup();
});

function origIn(t: { teardown(fn: () => void): void }): string {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'orig'), data);
  return dir;
}

/** A block cache in `dir` and a reader of obj.bin through it, both closed at the end of the test. */
async function objReader(t: Test, dir: string, p: S3Provider, opts: { maxBytes?: number; memoryBytes?: number } = {}): Promise<{ cache: BlockCache; r: VersionReader }> {
  const cache = await BlockCache.open({
    openIndex: openCacheStore,
    dir: join(dir, 'cache'),
    maxBytes: opts.maxBytes ?? 64 * MiB,
    memoryBytes: opts.memoryBytes ?? 0,
    writeQueueBytes: 16 * MiB,
  });
  t.teardown(() => cache.close());
  const st = await p.stat('obj.bin');
  return { cache, r: new VersionReader(cache, () => p, { locationId: 1, rel: 'obj.bin', version: st.version, size: st.size, label: '/s3/obj.bin' }, MiB) };
}

t.test('unhashed object: windows stream byte-exact (b3sum), far fewer requests than blocks, ramping up', async (t) => {
  const dir = origIn(t);
  const { p, proxy, seen } = await provider();
  t.teardown(() => p.close());
  watch(proxy, seen);
  const { cache, r } = await objReader(t, dir, p);
  seen.length = 0;
  const got = await readAll(r, data.length);
  const [a, b] = sameAsB3sum(dir, got, 'got');
  t.equal(a, b, 'b3sum of the bytes read = b3sum of the object');
  const blocks = Math.ceil(data.length / MiB);
  t.ok(seen.length < blocks / 2, `${seen.length} GETs for ${blocks} blocks`, { seen });
  t.match(seen[0], /^bytes=0-131071$/, 'the first read of a handle is a small request of just its bytes');
  const sizes = seen.slice(1).map((s) => {
    const m = /bytes=(\d+)-(\d+)/.exec(s)!;
    return Number(m[2]) - Number(m[1]) + 1;
  });
  t.ok(
    sizes.some((n) => n >= 4 * MiB),
    'windows ramp up to several blocks',
    { sizes },
  );
  await cache.settled();
  t.ok(cache.stats().blocks >= blocks - 1, 'streamed blocks were cached behind the reader');
});

t.test('past the ramp one request streams many blocks (a run), paced by the reader; a handle closed mid-run stops it', async (t) => {
  const dir = origIn(t);
  const big = randomBytes(40 * MiB + 123);
  await s3.put('big.bin', big);
  const { p, proxy, seen } = await provider();
  t.teardown(() => p.close());
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 128 * MiB, memoryBytes: 0, writeQueueBytes: 16 * MiB });
  t.teardown(() => cache.close());
  const st = await p.stat('big.bin');
  const content = { locationId: 1, rel: 'big.bin', version: st.version, size: st.size, label: '/s3/big.bin' };
  const blocks = Math.ceil(big.length / MiB);
  const live = blockPool.stats.live;

  watch(proxy, seen);
  const r = new VersionReader(cache, () => p, content, MiB);
  const got = await readAll(r, big.length);
  r.close();
  writeFileSync(join(dir, 'big'), big);
  writeFileSync(join(dir, 'got'), got);
  t.equal(b3sum(join(dir, 'got')), b3sum(join(dir, 'big')), 'b3sum of the bytes read = b3sum of the object');
  const sizes = seen.map((s) => {
    const m = /bytes=(\d+)-(\d+)/.exec(s)!;
    return Number(m[2]) - Number(m[1]) + 1;
  });
  // the first small read, the ramp (1, 2, 4 blocks), then one request for the rest (windows of 8 would take 5 more)
  t.ok(seen.length <= 5, `${seen.length} GETs for ${blocks} blocks`, { seen });
  t.ok(
    sizes.some((n) => n >= 30 * MiB),
    'one request streamed most of the object',
    { sizes },
  );

  // A second handle reads 12 MiB of the rest and is closed: the run stops about where its reader was.
  await cache.clear();
  await cache.settled();
  watch(proxy, seen);
  seen.length = 0;
  const r2 = new VersionReader(cache, () => p, content, MiB);
  const head: Buffer[] = [];
  for (let o = 0; o < 12 * MiB; o += READ) head.push(Buffer.from(await r2.read(o, READ)));
  t.ok(Buffer.concat(head).equals(big.subarray(0, 12 * MiB)), 'the second handle: exact bytes');
  const held = readAheadBudget.used;
  r2.close();
  // the run gives back what it read ahead; every pooled block returns once the cache has written its queue
  const deadline = Date.now() + 10_000;
  while (blockPool.stats.live !== live && Date.now() < deadline) {
    await cache.settled();
    await new Promise((res) => setTimeout(res, 20));
  }
  t.equal(blockPool.stats.live, live, 'every pooled block was given back after the close');
  // Streamed blocks are cached as they arrive: a run that had not been paced (or not stopped)
  // would have put the whole object there. Read: 12 blocks; ahead: what the handle held (its
  // windows, within the budget) and the run's one unclaimed block.
  const cached = cache.stats().blocks;
  t.ok(cached <= 12 + held / MiB + 2, `${cached} of ${blocks} blocks cached (12 read, ${held / MiB} held ahead at the close)`);
  t.ok(cached < blocks - 8, 'the stream stopped well before the end of the object');
});

t.test('a sequential reader streams from ONE request from its second read on, and the next run is requested before the reader gets there', async (t) => {
  const dir = origIn(t);
  const big = randomBytes(70 * MiB + 5);
  await s3.put('run.bin', big);
  const { p, proxy, seen } = await provider();
  t.teardown(() => p.close());
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 128 * MiB, memoryBytes: 0, writeQueueBytes: 16 * MiB });
  t.teardown(() => cache.close());
  const st = await p.stat('run.bin');
  const r = new VersionReader(cache, () => p, { locationId: 1, rel: 'run.bin', version: st.version, size: st.size, label: '/s3/run.bin' }, MiB);
  t.teardown(() => r.close());
  watch(proxy, seen);
  seen.length = 0;
  const starts = () => seen.map((s) => Number(/bytes=(\d+)-/.exec(s)![1]));
  const got: Buffer[] = [];
  // 1 MiB reads, as dd bs=1M through the mount; stop 24 blocks before the end of the first run (block 64)
  for (let i = 0; i < 40; i++) got.push(Buffer.from(await r.read(i * MiB, MiB)));
  t.same(starts().slice(0, 2), [0, MiB], 'block 0 alone, then from the second read one request', { seen });
  t.match(seen[1], new RegExp(`^bytes=${MiB}-${65 * MiB - 1}$`), 'the second request asks for a whole run (64 blocks), not a window of 2');
  const deadline = Date.now() + 10_000;
  while (!starts().includes(65 * MiB) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  t.same(starts(), [0, MiB, 65 * MiB], 'the next run was requested while the reader was still 25 blocks before it, and nothing else', { seen });
  for (let i = 40; i * MiB < big.length; i++) got.push(Buffer.from(await r.read(i * MiB, MiB)));
  writeFileSync(join(dir, 'run'), big);
  writeFileSync(join(dir, 'got'), Buffer.concat(got));
  t.equal(b3sum(join(dir, 'got')), b3sum(join(dir, 'run')), 'b3sum of the bytes read = b3sum of the object');
  t.equal(seen.length, 3, `3 GETs for ${Math.ceil(big.length / MiB)} blocks`, { seen });
});

t.test('a READ arriving just after the next one (the kernel sends them out of order now and then) is served from the blocks the handle holds', async (t) => {
  const dir = origIn(t);
  const { p, proxy, seen } = await provider();
  t.teardown(() => p.close());
  const { cache, r } = await objReader(t, dir, p);
  t.teardown(() => r.close());
  watch(proxy, seen);
  seen.length = 0;
  // 1 MiB READs as the kernel sends them (dd bs=1M): 0..5 in order, then 7 before 6, then the rest.
  const order = [0, 1, 2, 3, 4, 5, 7, 6, ...Array.from({ length: 5 }, (_, k) => 8 + k)];
  const got: Buffer[] = [];
  let hits = -1;
  for (const i of order) {
    const before = cache.stats().hits;
    got[i] = Buffer.from(await r.read(i * MiB, MiB));
    if (i === 6) hits = cache.stats().hits - before;
  }
  const [a, b] = sameAsB3sum(dir, Buffer.concat(got), 'got');
  t.equal(a, b, 'b3sum of the bytes read = b3sum of the object');
  t.equal(hits, 0, 'block 6, read after 7, came from the blocks the handle holds, not from the cache');
  const covering = seen.filter((s) => {
    const m = /bytes=(\d+)-(\d+)/.exec(s)!;
    return Number(m[1]) <= 6 * MiB && 6 * MiB <= Number(m[2]);
  });
  t.equal(covering.length, 1, 'block 6 was fetched once (in its stream), not again', { seen });
});

t.test('a READ arriving before the one expected (2 MiB before 1 MiB) streams the block it skipped with the rest, not on its own', async (t) => {
  const dir = origIn(t);
  const { p, proxy, seen } = await provider();
  t.teardown(() => p.close());
  const { r } = await objReader(t, dir, p);
  t.teardown(() => r.close());
  watch(proxy, seen);
  seen.length = 0;
  const blocks = Math.ceil(data.length / MiB);
  const got: Buffer[] = [];
  for (const i of [0, 2, 1, ...Array.from({ length: blocks - 3 }, (_, k) => 3 + k)]) got[i] = Buffer.from(await r.read(i * MiB, MiB));
  const [a, b] = sameAsB3sum(dir, Buffer.concat(got), 'got');
  t.equal(a, b, 'b3sum of the bytes read = b3sum of the object');
  t.same(seen, [`bytes=0-${MiB - 1}`, `bytes=${MiB}-${data.length - 1}`], 'block 0, then one request from block 1 to the end', { seen });
});

t.test('hashed object: bytes exact, a 4 KiB random read is a 4 KiB request, a corrupt byte mid-window is refetched from the other replica', async (t) => {
  const dir = origIn(t);
  const a = await provider();
  const b = await provider();
  t.teardown(() => a.p.close());
  t.teardown(() => b.p.close());
  const st = await a.p.stat('obj.bin');
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 64 * MiB, memoryBytes: 0, writeQueueBytes: 16 * MiB });
  t.teardown(() => cache.close());
  const blob = { hash: hash.hash, size: data.length, blockSize: MiB, blockHashes: hash.blockHashes };
  const sources = () => [s3Source('a/obj.bin', a.p, st.version), s3Source('b/obj.bin', b.p, st.version)];

  watch(a.proxy, a.seen);
  const random = new BlobReader(cache, blob, sources);
  a.seen.length = 0;
  const at = 7 * MiB + 12345;
  t.ok((await random.read(at, 4096)).equals(data.subarray(at, at + 4096)), '4 KiB random read: exact bytes');
  t.same(a.seen, [`bytes=${at}-${at + 4095}`], 'served by one 4 KiB ranged GET (If-Match the indexed ETag)');
  t.notOk(cache.has(`${hash.hash}:7`), 'an unverified small read is never cached');

  // The first window of 4+ blocks streamed from A gets one byte flipped in the middle of its body.
  a.proxy.clear();
  a.seen.length = 0;
  let bad = -1;
  a.proxy.inject(
    { kind: 'flip' },
    {
      times: 1,
      match: (req) => {
        if (!isGet(req)) return false;
        a.seen.push(String(req.headers.range));
        const m = /bytes=(\d+)-(\d+)/.exec(String(req.headers.range));
        const len = m ? Number(m[2]) - Number(m[1]) + 1 : 0;
        if (len < 4 * MiB) return false;
        bad = Math.floor((Number(m![1]) + (len >> 1)) / MiB);
        return true;
      },
    },
  );
  watch(b.proxy, b.seen);
  b.seen.length = 0;
  const r = new BlobReader(cache, blob, sources);
  const parts: Buffer[] = [];
  for (let o = 0; o < data.length; o += READ) {
    parts.push(Buffer.from(await r.read(o, READ)));
  }
  const [x, y] = sameAsB3sum(dir, Buffer.concat(parts), 'got');
  t.equal(x, y, 'b3sum of every byte read = b3sum of the object');
  t.ok(bad > 0, `a window was corrupted in block ${bad}`, { seen: a.seen });
  t.ok(b.seen.includes(`bytes=${bad * MiB}-${(bad + 1) * MiB - 1}`), 'the corrupt block was fetched again from the other replica', { seen: b.seen });
  t.equal(b.seen.length, 1, 'and only that block');
  t.equal(cache.stats().verifyFailures, 0, 'no bad block reached the cache');
});

t.test('a stream cut halfway resumes from the exact byte it stopped at', async (t) => {
  const dir = origIn(t);
  const { p, proxy, seen } = await provider();
  t.teardown(() => p.close());
  const { r } = await objReader(t, dir, p);
  // The first multi-block window is cut after 1.5 MiB of its body.
  const cut = MiB + MiB / 2;
  let cutAt = -1;
  proxy.clear();
  proxy.inject(
    { kind: 'truncate', bytes: cut },
    {
      times: 1,
      match: (req) => {
        if (!isGet(req)) return false;
        const m = /bytes=(\d+)-(\d+)/.exec(String(req.headers.range))!;
        if (Number(m[2]) - Number(m[1]) + 1 < 2 * MiB) return false;
        cutAt = Number(m[1]) + cut;
        return true;
      },
    },
  );
  proxy.inject(
    { kind: 'delay', ms: 0 },
    {
      times: 1,
      match: (req) => {
        if (isGet(req)) seen.push(String(req.headers.range));
        return false;
      },
    },
  );
  seen.length = 0;
  const got = await readAll(r, data.length);
  const [a, b] = sameAsB3sum(dir, got, 'got');
  t.equal(a, b, 'b3sum of the bytes read = b3sum of the object');
  t.ok(cutAt > 0, 'a window was cut');
  t.ok(
    seen.some((s) => s.startsWith(`bytes=${cutAt}-`)),
    `the next request starts at byte ${cutAt}`,
    { seen },
  );
});

t.test('the cache limit holds while windows stream (measured on disk)', async (t) => {
  const dir = origIn(t);
  const { p } = await provider();
  t.teardown(() => p.close());
  const limit = 3 * MiB;
  const { cache, r } = await objReader(t, dir, p, { maxBytes: limit });
  let peak = 0;
  const parts: Buffer[] = [];
  for (let o = 0; o < data.length; o += READ) {
    parts.push(Buffer.from(await r.read(o, READ)));
    peak = Math.max(peak, filesBytesAtOnce(join(dir, 'cache', 'blocks')));
  }
  await cache.settled();
  peak = Math.max(peak, filesBytesAtOnce(join(dir, 'cache', 'blocks')));
  t.ok(Buffer.concat(parts).equals(data), 'exact bytes');
  t.ok(peak <= limit, `block files peaked at ${peak} bytes on disk, limit ${limit}`);
  t.ok(cache.stats().evictions > 0, 'the cache evicted to stay under the limit');
});

t.test('a slow cache disk does not slow the reader (write-behind, bounded queue)', async (t) => {
  const dir = origIn(t);
  const { p } = await provider();
  t.teardown(() => p.close());
  const st = await p.stat('obj.bin');
  const delay = 1500;
  process.env.VDFS_TEST_CACHE_WRITE_DELAY_MS = String(delay);
  t.teardown(() => {
    delete process.env.VDFS_TEST_CACHE_WRITE_DELAY_MS;
  });
  // Sequential 128 KiB reads (streamed windows), or whole blocks read backwards (one fetch each).
  const timeRead = async (queue: number, name: string, backwards: boolean) => {
    const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, name), maxBytes: 64 * MiB, memoryBytes: 0, writeQueueBytes: queue });
    const r = new VersionReader(cache, () => p, { locationId: 1, rel: 'obj.bin', version: st.version, size: st.size, label: '/s3/obj.bin' }, MiB);
    const t0 = Date.now();
    const parts: Buffer[] = [];
    if (backwards) for (let i = 3; i >= 0; i--) parts.unshift(Buffer.from(await r.read(i * MiB, MiB)));
    else parts.push(await readAll(r, 4 * MiB));
    const ms = Date.now() - t0;
    const stats = cache.stats();
    await cache.close();
    return { ms, got: Buffer.concat(parts), stats };
  };
  for (const backwards of [false, true]) {
    const how = backwards ? 'whole blocks backwards' : 'sequential 128 KiB reads';
    const behind = await timeRead(2 * MiB, `c-${backwards}`, backwards);
    t.ok(behind.got.equals(data.subarray(0, 4 * MiB)), `${how}: exact bytes`);
    t.ok(behind.ms < delay, `${how}: 4 MiB read in ${behind.ms} ms while each cache write takes ${delay} ms`);
    t.ok(behind.stats.writeSkips >= 1, `${how}: blocks beyond the 2 MiB queue were not cached rather than waited for`);
  }
  // With the reader waiting for the disk (queue 0), the same block reads are slow: the checks above can fail.
  const inline = await timeRead(0, 'c-inline', true);
  t.ok(inline.ms >= delay, `with write-behind off, whole blocks backwards take ${inline.ms} ms`);
});

t.test('under a slow cache disk the write-behind queue stays within its limit, and the blocks held stay within read-ahead + queue', async (t) => {
  const dir = origIn(t);
  const { p } = await provider();
  t.teardown(() => p.close());
  const st = await p.stat('obj.bin');
  process.env.VDFS_TEST_CACHE_WRITE_DELAY_MS = '400';
  const limit = readAheadBudget.limit;
  readAheadBudget.limit = 3 * MiB;
  t.teardown(() => {
    delete process.env.VDFS_TEST_CACHE_WRITE_DELAY_MS;
    readAheadBudget.limit = limit;
  });
  const queue = 3 * MiB;
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 64 * MiB, memoryBytes: 0, writeQueueBytes: queue });
  t.teardown(() => cache.close());
  const before = blockPool.stats.live;
  const content = { locationId: 1, rel: 'obj.bin', version: st.version, size: st.size, label: '/s3/obj.bin' };
  const readers = [0, 1].map(() => new VersionReader(cache, () => p, content, MiB));
  const into = readers.map(() => Buffer.alloc(data.length));
  let queued = 0;
  let held = 0;
  // Two handles stream the object at once (FUSE's way: readInto, 128 KiB at a time), the queue and the pool sampled at every read.
  await Promise.all(
    readers.map(async (r, k) => {
      for (let o = 0; o < data.length; o += READ) {
        await r.readInto(o, into[k].subarray(o, Math.min(o + READ, data.length)));
        queued = Math.max(queued, cache.stats().writeQueued);
        held = Math.max(held, blockPool.stats.live - before);
      }
    }),
  );
  for (const [k, got] of into.entries()) t.ok(got.equals(data), `handle ${k}: exact bytes`);
  t.ok(queued <= queue, `the write-behind queue peaked at ${queued / MiB} MiB, limit ${queue / MiB} MiB`);
  t.ok(queued >= 2 * MiB, `the queue did fill (${queued / MiB} MiB): the bound was tested`);
  t.ok(cache.stats().writeSkips >= 1, `${cache.stats().writeSkips} blocks found the queue full and were not cached`);
  // Read-ahead (3 MiB, plus per handle the block its reader holds now and the one each of its two streams fills) and the queue (3 MiB): what the slab is sized for.
  t.ok(held <= (readAheadBudget.limit + queue) / MiB + 3 * readers.length, `${held} pooled blocks held at once, for 3 MiB of read-ahead and a 3 MiB queue`);
  for (const r of readers) r.close();
});

t.test("the daemon's slab holds its read-ahead budget and its write-behind queue together (a long stream takes no block from outside it)", async (t) => {
  t.ok(blockPool.slab_.blockSize === MiB && blockPool.slab_.slots * MiB >= readAheadBudget.limit + WRITE_QUEUE_BYTES, `${blockPool.slab_.slots} slots of 1 MiB`);
  t.ok(blockPool.slab_.slots * MiB <= readAheadBudget.limit + WRITE_QUEUE_BYTES + 4 * MiB, 'and not much more: the slab is the most blocks ever held at once');
});

t.test('streamed blocks go to the disk tier, not the memory tier (a big stream does not evict what is re-read)', async (t) => {
  const dir = origIn(t);
  const { p } = await provider();
  t.teardown(() => p.close());
  const { cache, r } = await objReader(t, dir, p, { memoryBytes: 64 * MiB });
  const st = await p.stat('obj.bin');
  const got = await readAll(r, data.length);
  r.close();
  t.ok(got.equals(data), 'exact bytes');
  await cache.settled();
  const s = cache.stats();
  t.equal(s.memoryUsed, 0, 'nothing of the stream was kept in the memory tier');
  t.ok(s.blocks >= Math.ceil(data.length / MiB) - 1, `${s.blocks} blocks on disk`);
  // A block read again comes from the disk tier, verified, without a request.
  const again = new VersionReader(cache, () => p, { locationId: 1, rel: 'obj.bin', version: st.version, size: st.size, label: '/s3/obj.bin' }, MiB);
  t.ok((await again.read(5 * MiB, MiB)).equals(data.subarray(5 * MiB, 6 * MiB)), 'a re-read block is exact');
  t.equal(cache.stats().misses, s.misses, 'and came from the cache');
});

t.test('one read-ahead budget bounds what all handles hold ahead together', async (t) => {
  const dir = origIn(t);
  const { p } = await provider();
  t.teardown(() => p.close());
  const st = await p.stat('obj.bin');
  const limit = readAheadBudget.limit;
  readAheadBudget.limit = 3 * MiB;
  t.teardown(() => {
    readAheadBudget.limit = limit;
  });
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 64 * MiB, memoryBytes: 0, writeQueueBytes: 16 * MiB });
  t.teardown(() => cache.close());
  const before = readAheadBudget.used;
  const readers = [0, 1, 2].map(() => new VersionReader(cache, () => p, { locationId: 1, rel: 'obj.bin', version: st.version, size: st.size, label: '/s3/obj.bin' }, MiB));
  const parts: Buffer[][] = readers.map(() => []);
  let peak = 0;
  // Three handles streaming the object at once, in turns, 128 KiB at a time.
  for (let o = 0; o < data.length; o += READ) {
    for (const [k, r] of readers.entries()) parts[k].push(Buffer.from(await r.read(o, READ)));
    peak = Math.max(peak, readAheadBudget.used - before);
  }
  for (const [k] of readers.entries()) t.ok(Buffer.concat(parts[k]).equals(data), `handle ${k}: exact bytes`);
  // Each handle may go over by the block its reader holds now (always allowed): 3 MiB + 3 blocks.
  t.ok(peak <= 6 * MiB, `read-ahead peaked at ${peak / MiB} MiB for three handles, budget 3 MiB`);
  t.ok(peak >= 2 * MiB, `the handles did read ahead (${peak / MiB} MiB)`);
  for (const r of readers) r.close();
  t.equal(readAheadBudget.used, before, 'closing the handles gives their read-ahead back');
  // A pin or repair reads through its own reader, which gives its read-ahead back when done.
  const blob = { hash: hash.hash, size: data.length, blockSize: MiB, blockHashes: hash.blockHashes };
  const got: Buffer[] = [];
  await fetchVerified(
    blob,
    () => [s3Source('a/obj.bin', p, st.version)],
    async (_i, b) => {
      got.push(Buffer.from(b));
    },
  );
  t.ok(Buffer.concat(got).equals(data), 'fetchVerified: exact bytes');
  t.equal(readAheadBudget.used, before, 'fetchVerified gave its read-ahead back');
});

t.test('streamed blocks are pooled buffers, reused, and every one is given back (no bytes of one block seen in another)', async (t) => {
  const dir = origIn(t);
  const { p } = await provider();
  t.teardown(() => p.close());
  const st = await p.stat('obj.bin');
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 64 * MiB, memoryBytes: 0, writeQueueBytes: 16 * MiB });
  t.teardown(() => cache.close());
  const before = { ...blockPool.stats };
  // Two handles of the same object read at once, one through readInto (FUSE, WebDAV), one through read().
  const content = { locationId: 1, rel: 'obj.bin', version: st.version, size: st.size, label: '/s3/obj.bin' };
  const a = new VersionReader(cache, () => p, content, MiB);
  const b = new VersionReader(cache, () => p, content, MiB);
  const into = Buffer.alloc(data.length);
  const viaInto = (async () => {
    for (let o = 0; o < data.length; o += READ) await a.readInto(o, into.subarray(o, Math.min(o + READ, data.length)));
  })();
  const [, viaRead] = await Promise.all([viaInto, readAll(b, data.length)]);
  const [s1, s0] = sameAsB3sum(dir, into, 'into');
  t.equal(s1, s0, 'readInto: b3sum of the bytes read = b3sum of the object');
  t.ok(viaRead.equals(data), 'read(): exact bytes while the other handle streams');
  a.close();
  b.close();
  await cache.settled();
  // the handles' last window may still be arriving: its blocks are given back as they land
  const deadline = Date.now() + 10_000;
  while (blockPool.stats.live !== before.live && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await cache.settled();
  t.ok(blockPool.stats.taken - before.taken >= 12, `${blockPool.stats.taken - before.taken} blocks came from the pool`);
  t.ok(blockPool.stats.reused > before.reused, 'freed blocks were used again');
  t.equal(blockPool.stats.live, before.live, 'every pooled block was given back once the readers closed and the cache wrote its queue');
  // The cache holds the same bytes (its blocks were written from pooled buffers before they were reused).
  const again = new VersionReader(cache, () => p, content, MiB);
  const cached = await readAll(again, data.length);
  again.close();
  t.ok(cached.equals(data), 're-read from the cache: exact bytes');
});

t.test('the warm-up request a daemon sends at start is one HEAD of a missing key, never a bucket listing, and never throws', async (t) => {
  const { p, proxy } = await provider();
  t.teardown(() => p.close());
  const seen: string[] = [];
  proxy.clear();
  proxy.inject(
    { kind: 'delay', ms: 0 },
    {
      times: 1,
      match: (req) => {
        seen.push(`${req.method} ${req.url}`);
        return false;
      },
    },
  );
  await p.warmUp();
  t.equal(seen.length, 1, 'one request', { seen });
  t.match(seen[0], new RegExp(`^HEAD /${s3.bucket}/\\.vdfs-warm-up$`), 'a HEAD of one key (s3rver answers HeadBucket with a listing)');
  // the server gone: still resolves (the first reader then sees the error of its own request)
  const down = new S3Provider({ bucket: s3.bucket, prefix: '', endpoint: 'http://127.0.0.1:9', region: 'us-east-1' }, { timeouts: { connectMs: 300, idleMs: 300 } });
  t.teardown(() => down.close());
  await t.resolves(down.warmUp(), 'unreachable: resolves, no throw');
});
