import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { BlockCache } from '../cache/block-cache';
import { openCacheStore } from '../index/cache-store';
import { hashStream } from '../index/remote-scan';
import { BlobReader } from '../mount/vfs/blob-reader';
import { VersionReader } from '../mount/vfs/version-reader';
import { isFsError, type FsErrorCode } from '../core/fs-error';
import { S3Provider } from '../providers/s3/s3-provider';
import { b3sum, tempDir } from './helpers/cli';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startS3Server, type S3TestServer } from './helpers/s3-server';

const MiB = 1 << 20;
const BUDGET = 2000;
const IDLE = 800;
const data = randomBytes(3 * MiB + 4321);
const isGet = (req: IncomingMessage) => req.method === 'GET' && !req.url!.includes('list-type');

let s3: S3TestServer;
let proxy: FaultProxy;
let p: S3Provider;

t.before(async () => {
  s3 = await startS3Server();
  await s3.put('obj.bin', data);
  proxy = await startFaultProxy(s3.endpoint);
  p = new S3Provider(
    { bucket: s3.bucket, prefix: '', endpoint: proxy.endpoint, region: 'us-east-1' },
    { retry: { budgetMs: BUDGET }, timeouts: { idleMs: IDLE, connectMs: 1000 } },
  );
});
t.teardown(async () => {
  await p?.close();
  await proxy?.close();
  await s3?.cleanup();
});
t.afterEach(() => proxy.clear());

async function failsWith(t: Test, fn: () => Promise<unknown>, codes: FsErrorCode[], within: number, what: string): Promise<void> {
  const t0 = Date.now();
  try {
    const v = await fn();
    t.fail(`${what}: expected ${codes.join('|')}, got ${v instanceof Buffer ? `${v.length} bytes` : 'a result'}`);
  } catch (err) {
    t.ok(isFsError(err) && codes.includes(err.code), `${what}: ${codes.join('|')}`, { found: (err as Error).message });
  }
  const ms = Date.now() - t0;
  t.ok(ms < within, `${what}: gave up in ${ms} ms (< ${within})`);
}

const slice = (o: number, n: number) => data.subarray(o, o + n);

t.test('transient faults are retried and the bytes are exact', async (t) => {
  // [what, fault, how many requests get it, how many requests in all]
  const cases: [string, Parameters<FaultProxy['inject']>[0], number, number][] = [
    ['503 SlowDown', { kind: 'status', status: 503 }, 3, 4],
    ['429', { kind: 'status', status: 429, code: 'TooManyRequests' }, 2, 3],
    ['500', { kind: 'status', status: 500 }, 1, 2],
    ['connection reset', { kind: 'reset' }, 3, 4],
    ['truncated body', { kind: 'truncate', bytes: 1000 }, 2, 3],
    ['a delay longer than the idle timeout', { kind: 'delay', ms: IDLE + 400 }, 1, 2],
    ['a delay shorter than the idle timeout (waited for, not retried)', { kind: 'delay', ms: 200 }, 1, 1],
  ];
  for (const [what, fault, times, requests] of cases) {
    proxy.inject(fault, { times, match: isGet });
    const before = proxy.stats.requests;
    const got = await p.readRange('obj.bin', MiB - 5, MiB);
    t.ok(got.equals(slice(MiB - 5, MiB)), `${what} x${times}: exact bytes`);
    t.equal(proxy.stats.requests - before, requests, `${what}: ${requests} requests`);
  }
});

t.test('persistent faults give up within the budget with a clear error, never short or wrong bytes', async (t) => {
  const bound = BUDGET + IDLE + 1500;
  proxy.inject({ kind: 'status', status: 503 }, { times: Infinity, match: isGet });
  await failsWith(t, () => p.readRange('obj.bin', 0, 4096), ['EIO'], bound, 'always 503 SlowDown');
  proxy.clear();
  proxy.inject({ kind: 'reset' }, { times: Infinity, match: isGet });
  await failsWith(t, () => p.readRange('obj.bin', 0, 4096), ['EHOSTDOWN'], bound, 'always reset');
  proxy.clear();
  proxy.inject({ kind: 'truncate', bytes: 100 }, { times: Infinity, match: isGet });
  await failsWith(t, () => p.readRange('obj.bin', 0, MiB), ['EIO', 'EHOSTDOWN'], bound, 'always truncated');
  proxy.clear();
  proxy.inject({ kind: 'delay', ms: 60_000 }, { times: Infinity, match: isGet });
  await failsWith(t, () => p.readRange('obj.bin', 0, 4096), ['EHOSTDOWN'], bound, 'always stalled');
  proxy.clear();
  t.equal(await p.isOnline(), true, 'the provider still works afterwards');
});

t.test('a flipped byte in a hashed blob is caught by block verification and never returned', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'orig');
  writeFileSync(file, data);
  const h = await hashStream(await p.readStream('obj.bin'), MiB);
  t.equal(h.hash, b3sum(file), 'hashStream agrees with b3sum');
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 64 * MiB, memoryBytes: 8 * MiB });
  t.teardown(() => cache.close());
  const blob = { hash: h.hash, size: data.length, blockSize: MiB, blockHashes: h.blockHashes };
  const reader = new BlobReader(cache, blob, () => [{ label: 's3/obj.bin', read: (o, n) => p.readRange('obj.bin', o, n) }]);
  proxy.inject({ kind: 'flip' }, { times: Infinity, match: isGet });
  await failsWith(t, () => reader.read(MiB + 10, 100), ['EIO'], 5000, 'every answer corrupt');
  t.equal(await cache.peek(`${h.hash}:1`), undefined, 'the corrupt block was not cached');
  proxy.clear();
  const ok = await reader.read(MiB + 10, 100);
  t.ok(ok.equals(slice(MiB + 10, 100)), 'once the source answers correctly, exact bytes');
});

t.test('whole-object reads check length and the MD5 ETag', async (t) => {
  const readAll = async (s: Readable) => {
    const c: Buffer[] = [];
    for await (const x of s) c.push(x as Buffer);
    return Buffer.concat(c);
  };
  proxy.inject({ kind: 'flip' }, { match: isGet });
  await failsWith(t, async () => readAll(await p.readStream('obj.bin')), ['EIO'], 5000, 'flipped byte in a whole-object read');
  proxy.inject({ kind: 'truncate', bytes: MiB }, { match: isGet });
  await failsWith(t, async () => readAll(await p.readStream('obj.bin')), ['EIO'], 5000, 'truncated whole-object read');
  t.ok((await readAll(await p.readStream('obj.bin'))).equals(data), 'a clean read passes');
});

t.test('unhashed content: the version is checked, a changed object is ESTALE, not mixed bytes', async (t) => {
  const dir = tempDir(t);
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 64 * MiB, memoryBytes: 0 });
  t.teardown(() => cache.close());
  const st = await p.stat('obj.bin');
  const r = new VersionReader(cache, () => p, { locationId: 1, rel: 'obj.bin', version: st.version, size: st.size, label: '/s3/obj.bin' }, MiB);
  // A whole block (a small read would be served uncached by a ranged read of just its bytes).
  t.ok((await r.read(0, MiB)).equals(slice(0, MiB)), 'first block read');
  await s3.put('obj.bin', randomBytes(data.length));
  t.ok((await r.read(5, 10)).equals(slice(5, 10)), 'a cached block of the indexed version still reads');
  await failsWith(t, () => r.read(2 * MiB, 10), ['ESTALE'], 5000, 'an uncached block of a changed object');
  await s3.put('obj.bin', data);
});
