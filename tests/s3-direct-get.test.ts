import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { S3Provider } from '../providers/s3/s3-provider';
import { EMPTY_SHA256, encodeKeyPath, signGet } from '../providers/s3/s3-sigv4';
import { FsError } from '../core/fs-error';
import { b3sumMany, tempDir, vdfsAsync, vdfsOk } from './helpers/cli';
import { startMount } from './helpers/mount';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startS3Server, type S3TestServer } from './helpers/s3-server';

// GetObjects that bypass the SDK once its first one showed the route (providers/s3/s3-direct-get.ts),
// against a real s3rver, which checks every SigV4 signature, behind a proxy that records each GET.

t.test('SigV4: the signer gives the signature of the GET Object example in the AWS documentation', async (t) => {
  // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html ("Example: GET Object")
  const auth = signGet(
    '/test.txt',
    { host: 'examplebucket.s3.amazonaws.com', range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': '20130524T000000Z' },
    { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
    'us-east-1',
    's3',
  );
  t.equal(
    auth,
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, ' +
      'Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
  );
  t.equal(encodeKeyPath("a b/it's (1)!*~.jpg"), 'a%20b/it%27s%20%281%29%21%2A~.jpg', 'keys are encoded as the SDK encodes them');
});

interface Rig {
  s3: S3TestServer;
  proxy: FaultProxy;
  p: S3Provider;
  /** Request URLs of every GET of an object seen by the proxy. */
  gets: string[];
}

async function rig(t: Test, opts: ConstructorParameters<typeof S3Provider>[1] = {}): Promise<Rig> {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const proxy = await startFaultProxy(s3.endpoint);
  t.teardown(() => proxy.close());
  const gets: string[] = [];
  proxy.inject(
    { kind: 'delay', ms: 0 },
    {
      times: Infinity,
      match: (req: IncomingMessage) => {
        if (req.method === 'GET' && !req.url!.includes('list-type')) gets.push(req.url!);
        return false;
      },
    },
  );
  const p = new S3Provider({ bucket: s3.bucket, prefix: 'loc/', endpoint: proxy.endpoint, region: 'us-east-1' }, { retry: { budgetMs: 3000 }, ...opts });
  t.teardown(() => p.close());
  return { s3, proxy, p, gets };
}

/** The SDK's requests carry `x-id=GetObject`; the direct ones have no query at all. */
const bySdk = (url: string) => url.includes('x-id=GetObject');

const NAMES = ['first.bin', 'a b/c+d.txt', "it's (1)!*~.jpg", 'ünï/cødé €.bin', '%41%2F.txt', 'semi;colon&x=y?.txt', 'hash#tag.txt', 'tab\tand,comma.txt'];

t.test('after the first GetObject, reads go straight to the endpoint, signed, byte-exact for keys with any characters', async (t) => {
  const { s3, p, gets } = await rig(t);
  const data = new Map(NAMES.map((n) => [n, randomBytes(3000 + n.length)]));
  for (const [n, d] of data) await s3.put(`loc/${n}`, d);
  for (const n of NAMES) t.same(await p.readRange(n, 0, 100_000), data.get(n), `readRange ${JSON.stringify(n)}`);
  t.ok(bySdk(gets[0]), 'the first GET went through the SDK');
  t.equal(gets.length, NAMES.length, 'one GET per read');
  t.same(gets.slice(1).filter(bySdk), [], 'every later GET bypassed the SDK (s3rver checked each signature: a wrong one is a 403, EACCES here)');
  for (const n of NAMES) {
    const d = data.get(n)!;
    t.same(await p.readRange(n, 17, 1000, { version: (await p.stat(n)).version }), d.subarray(17, 1017), `ranged read with If-Match of ${JSON.stringify(n)}`);
    const chunks: Buffer[] = [];
    for await (const c of await p.readRangeStream!(n, 5, d.length)) chunks.push(c as Buffer);
    t.same(Buffer.concat(chunks), d.subarray(5), `readRangeStream of ${JSON.stringify(n)}`);
    const whole: Buffer[] = [];
    for await (const c of await p.readStream(n)) whole.push(c as Buffer);
    t.same(Buffer.concat(whole), d, `readStream (length and MD5 checked) of ${JSON.stringify(n)}`);
  }
  t.same(gets.slice(1).filter(bySdk), [], 'still no GET through the SDK');
});

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof FsError ? err.code : `not an FsError: ${String(err)}`;
  }
};

t.test("direct GETs answer errors as the SDK's did: ENOENT, EISDIR, ESTALE, past the end, retried faults, stalls", async (t) => {
  const { s3, proxy, p, gets } = await rig(t, { retry: { budgetMs: 3000 }, timeouts: { idleMs: 400 } });
  const body = randomBytes(50_000);
  await s3.put('loc/f.bin', body);
  await s3.put('loc/dir/inside.txt', 'x');
  const version = (await p.stat('f.bin')).version!;
  t.same(await p.readRange('f.bin', 0, 10), body.subarray(0, 10), 'the first read (through the SDK)');
  const direct = () => gets.slice(1).every((u) => !bySdk(u));

  t.equal(await codeOf(p.readRange('missing.bin', 0, 10)), 'ENOENT', 'a missing key is ENOENT');
  t.equal(await codeOf(p.readRange('dir', 0, 10)), 'EISDIR', 'a prefix with keys under it is EISDIR');
  t.equal(await codeOf(p.readRange('f.bin', 0, 10, { version: 'not-the-etag' })), 'ESTALE', 'another version is ESTALE');
  t.same(await p.readRange('f.bin', 60_000, 10), Buffer.alloc(0), 'a range past the end is empty (416)');
  t.same(await p.readRange('f.bin', 49_990, 100, { version }), body.subarray(49_990), 'a range over the end is cut at the end');

  for (const fault of [
    { kind: 'status', status: 503, code: 'SlowDown' },
    { kind: 'status', status: 500, code: 'InternalError' },
    { kind: 'reset' },
    { kind: 'truncate', bytes: 100 },
  ] as const) {
    const before = proxy.stats.faulted;
    proxy.inject(fault, { match: (req) => req.method === 'GET' && req.url!.includes('f.bin') });
    t.same(await p.readRange('f.bin', 1000, 20_000, { version }), body.subarray(1000, 21_000), `${JSON.stringify(fault)} once: retried, byte-exact`);
    t.equal(proxy.stats.faulted, before + 1, `the fault ${fault.kind} was injected`);
  }
  const before = proxy.stats.faulted;
  proxy.inject({ kind: 'delay', ms: 1500 }, { match: (req) => req.method === 'GET' && req.url!.includes('f.bin') });
  t.same(await p.readRange('f.bin', 0, 1000, { version }), body.subarray(0, 1000), 'a stalled answer times out (idle 400 ms) and is retried');
  t.equal(proxy.stats.faulted, before + 1, 'the stall was injected');

  proxy.inject({ kind: 'status', status: 503, code: 'SlowDown' }, { times: Infinity, match: (req) => req.method === 'GET' && req.url!.includes('f.bin') });
  t.equal(await codeOf(p.readRange('f.bin', 0, 10)), 'EIO', 'throttled past the retry budget: EIO');
  proxy.clear();

  const ac = new AbortController();
  const reading = codeOf(p.readRange('f.bin', 0, 10, { signal: ac.signal }));
  ac.abort();
  t.not(await reading, 'resolved', 'an aborted read rejects');
  t.ok(direct(), 'all of these went straight to the endpoint');
});

t.test('a folder of small objects read by 8 parallel readers through the FUSE mount: b3sum-exact, one GET per file', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const proxy = await startFaultProxy(s3.endpoint);
  t.teardown(() => proxy.close());
  const N = 200;
  const dir = tempDir(t);
  const src = join(dir, 'src');
  const out = join(dir, 'out');
  mkdirSync(src);
  mkdirSync(out);
  const names = Array.from({ length: N }, (_, i) => `p${String(i).padStart(4, '0')}.jpg`);
  for (const n of names) {
    const d = randomBytes(100 * 1024);
    writeFileSync(join(src, n), d);
    await s3.put(`photos/${n}`, d);
  }
  const gets = new Map<string, number>();
  proxy.inject(
    { kind: 'delay', ms: 0 },
    {
      times: Infinity,
      match: (req) => {
        const m = /^\/[^/]+\/photos\/([^/?]+)(\?|$)/.exec(req.url ?? '');
        if (req.method === 'GET' && m) gets.set(m[1], (gets.get(m[1]) ?? 0) + 1);
        return false;
      },
    },
  );
  const home = join(dir, 'home');
  vdfsOk(home, ['init', '--name', 'direct-get']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('', proxy.endpoint)]);
  await vdfsAsync(home, ['scan', 'cloud']);
  const m = await startMount(home, join(dir, 'mnt'));
  t.teardown(() => m.stop());
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < N) {
        const n = names[next++];
        writeFileSync(join(out, n), await readFile(join(m.mountpoint, 'cloud', 'photos', n)));
      }
    }),
  );
  const want = b3sumMany(names.map((n) => join(src, n)));
  const got = b3sumMany(names.map((n) => join(out, n)));
  t.same(
    names.filter((n) => got.get(join(out, n)) !== want.get(join(src, n))),
    [],
    `${N} files read through the mount match b3sum of the originals`,
  );
  t.same(
    names.filter((n) => gets.get(n) !== 1),
    [],
    'one GET per file (by its reader or fetched ahead, never twice)',
  );
});
