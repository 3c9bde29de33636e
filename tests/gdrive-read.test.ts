// Drive content downloads (providers/gdrive/gdrive-media.ts): plain node:http GETs of alt=media,
// ranged, against the loopback Drive-protocol server. What a mistake in that path would break:
// the bytes (b3sum through the mount), the token refresh on 401, the retries (403 rate limits,
// 429, 5xx), the version check of every streamed request, the resume of a cut stream.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { b3sum, tempDir, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { startDriveServer, type DriveTestServer } from './helpers/drive-server';
import { GdriveProvider } from '../providers/gdrive/gdrive-provider';
import { writeTokens } from '../providers/gdrive/gdrive-tokens';
import { parseGdriveUri } from '../providers/gdrive/gdrive-uri';
import type { FsError } from '../core/fs-error';

const MiB = 1 << 20;
const MEDIA = 'GET /drive/v3/files/ID?alt';

/** A provider on a fresh server's folder `loc` holding `data` at big.bin (`another()`: one more provider there, its caches empty). */
async function setup(t: Test, data: Buffer): Promise<{ drive: DriveTestServer; p: GdriveProvider; folder: string; md5: string; another: () => GdriveProvider }> {
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const home = tempDir(t, 'vdfs-gdrive-read-');
  writeTokens({ access_token: drive.token, refresh_token: drive.refreshToken, client_id: 'test-client', token_url: `${drive.root}token` }, home);
  const folder = await drive.mkdir('loc');
  await drive.put('big.bin', data, { base: folder });
  const another = () => {
    const p = new GdriveProvider(parseGdriveUri(`gdrive://${folder}?root=${encodeURIComponent(drive.root)}`), { retry: { budgetMs: 4000, baseDelayMs: 20 }, homeDir: home });
    t.teardown(() => p.close());
    return p;
  };
  const md5 = (await drive.get({ path: 'big.bin', base: folder }))!.md5Checksum!;
  return { drive, p: another(), folder, md5, another };
}

/** Everything a stream gives until it ends or fails, and how it stopped. */
async function drain(s: Readable): Promise<{ data: Buffer; err?: Error }> {
  const parts: Buffer[] = [];
  try {
    for await (const c of s) parts.push(c as Buffer);
    return { data: Buffer.concat(parts) };
  } catch (err) {
    return { data: Buffer.concat(parts), err: err as Error };
  }
}

t.test('a ranged download is byte-exact; 403 rateLimitExceeded, 429 and 503 before it are retried', async (t) => {
  const data = randomBytes(5 * MiB + 7);
  const { drive, p, md5 } = await setup(t, data);
  await drive.counts(true);
  await drive.fault(403, 'rateLimitExceeded', 1, 'alt=media');
  await drive.fault(429, 'rateLimitExceeded', 1, 'alt=media');
  await drive.fault(503, 'backendError', 1, 'alt=media');
  const got = await drain(await p.readRangeStream('big.bin', 1000, 3 * MiB, { version: md5 }));
  t.notOk(got.err, 'the stream ends cleanly');
  t.ok(got.data.equals(data.subarray(1000, 1000 + 3 * MiB)), 'the bytes of the range asked');
  const c = await drive.counts(true);
  t.same([c['fault 403'], c['fault 429'], c['fault 503'], c[MEDIA]], [1, 1, 1, 1], 'each fault was answered once, then one download served the bytes', { c });
  t.same(await drive.ranges(), [`bytes=1000-${1000 + 3 * MiB - 1}`], 'one ranged request');

  // The buffered path (readRange: single blocks) goes through the same retries.
  await drive.fault(500, 'backendError', 2, 'alt=media');
  const buf = await p.readRange('big.bin', 5 * MiB - 10, 100, { version: md5 });
  t.ok(buf.equals(data.subarray(5 * MiB - 10, 5 * MiB + 7)), 'readRange: the tail, clamped at the end');
  t.equal((await drive.counts(true))['fault 500'], 2, 'after two 500s');

  // Past the end: nothing (a 416 from the server, not an error).
  t.equal((await drain(await p.readRangeStream('big.bin', data.length + 5, 10, { version: md5 }))).data.length, 0, 'a range past the end is empty');

  // A server that keeps failing: EIO within the retry budget, saying so.
  await drive.fault(503, 'backendError', 1000, 'alt=media');
  await t.rejects(p.readRangeStream('big.bin', 0, 10, { version: md5 }), { code: 'EIO', message: /still failing after \d+ attempts/ });
});

t.test('a token that expires mid-read is refreshed once and the read goes on; a revoked one is EACCES naming vdfs auth gdrive', async (t) => {
  const data = randomBytes(2 * MiB);
  const { drive, p, md5 } = await setup(t, data);
  t.ok((await drain(await p.readRangeStream('big.bin', 0, MiB, { version: md5 }))).data.equals(data.subarray(0, MiB)), 'the first half');
  await drive.counts(true);
  await drive.expire();
  // readStream checks the version on metadata read under a second ago: the download alone meets the 401.
  const whole = await drain(await p.readStream('big.bin', { version: md5 }));
  t.notOk(whole.err);
  t.ok(whole.data.equals(data), 'the whole file, read with a refreshed token');
  const c = await drive.counts(true);
  t.equal(c.token, 1, 'one refresh', { c });
  t.ok((await drain(await p.readRangeStream('big.bin', MiB, MiB, { version: md5 }))).data.equals(data.subarray(MiB)), 'the second half, with the new token');
  t.equal((await drive.counts(true)).token ?? 0, 0, 'and no more refreshes');

  await drain(await p.readRangeStream('big.bin', 0, 10, { version: md5 }));
  await drive.revoke();
  const err = (await p.readStream('big.bin', { version: md5 }).then(drain, (e: Error) => ({ data: Buffer.alloc(0), err: e }))).err as FsError | undefined;
  t.equal(err?.code, 'EACCES', 'a revoked authorisation is EACCES');
  t.match(err?.message, /vdfs auth gdrive/, 'naming the command that fixes it');
});

t.test('every streamed request checks the version: a change between two requests is refused with ESTALE, never served', async (t) => {
  const data = randomBytes(2 * MiB);
  const { drive, p, folder, md5, another } = await setup(t, data);
  const cold = another();
  t.ok((await cold.readRange('big.bin', 10, 100, { version: md5 })).equals(data.subarray(10, 110)), 'a cold single range (bytes and metadata asked at once)');
  t.ok((await drain(await p.readRangeStream('big.bin', 0, MiB, { version: md5 }))).data.equals(data.subarray(0, MiB)), 'the first window');
  const changed = randomBytes(2 * MiB);
  await drive.put('big.bin', changed, { base: folder });
  await drive.counts(true);
  // At once: metadata read a moment ago must not vouch for the bytes of the next request.
  await t.rejects(p.readRangeStream('big.bin', MiB, MiB, { version: md5 }), { code: 'ESTALE' }, 'the next window is refused');
  await t.rejects(another().readRange('big.bin', MiB, 100, { version: md5 }), { code: 'ESTALE' }, 'a cold single range of the old version is refused too');
  const now = (await drive.get({ path: 'big.bin', base: folder }))!.md5Checksum!;
  t.ok((await drain(await p.readRangeStream('big.bin', MiB, MiB, { version: now }))).data.equals(changed.subarray(MiB)), 'the new version reads under its own version');
});

t.test('a redirected download is followed on the same host with the token; to plain http elsewhere it is refused', async (t) => {
  const data = randomBytes(300_000);
  const { drive, p, md5 } = await setup(t, data);
  await drive.counts(true);
  await drive.redirect('self');
  t.ok((await drain(await p.readRangeStream('big.bin', 7, 1000, { version: md5 }))).data.equals(data.subarray(7, 1007)), 'the bytes, from where it was sent');
  const c = await drive.counts(true);
  t.same([c.redirect, c[MEDIA], c.token ?? 0], [1, 2, 0], 'the redirect, then the download it sent to, with the token (no refresh)', { c });
  await drive.redirect('http://example.invalid/elsewhere');
  await t.rejects(p.readRangeStream('big.bin', 0, 10, { version: md5 }), { code: 'EIO', message: /redirected to http:\/\/example\.invalid/ }, 'not followed');
});

t.test('a cut download: readRange asks again, a stream ends short for its caller to resume', async (t) => {
  const data = randomBytes(4 * MiB);
  const { drive, p, md5 } = await setup(t, data);
  await drive.ranges();
  await drive.cut(100_000, 'alt=media');
  const buf = await p.readRange('big.bin', 1 * MiB, 2 * MiB, { version: md5 });
  t.ok(buf.equals(data.subarray(MiB, 3 * MiB)), 'readRange: the whole range, from a second request');
  t.equal((await drive.counts(true)).cut, 1, 'after one cut');
  await drive.cut(200_000, 'alt=media');
  const got = await drain(await p.readRangeStream('big.bin', 0, 4 * MiB, { version: md5 }));
  t.equal(got.data.length, 200_000, 'the stream gives the bytes that came, then stops');
  t.ok(got.data.equals(data.subarray(0, 200_000)), 'and they are the right ones');
});

t.test('behind a proxy (HTTP_PROXY) downloads go through it, by the client library', async (t) => {
  const data = randomBytes(MiB + 3);
  // A CONNECT proxy that counts the downloads it carried (plain HTTP inside: the test server is http).
  let downloads = 0;
  const proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req, client, head) => {
    client.on('data', (c: Buffer) => (downloads += c.toString('latin1').split('alt=media').length - 1));
    const [host, port] = String(req.url).split(':');
    const up = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => proxy.close());
  const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY, no_proxy: process.env.no_proxy };
  process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  delete process.env.NO_PROXY;
  delete process.env.no_proxy;
  t.teardown(() => {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  });
  const { drive, p, md5 } = await setup(t, data);
  await drive.counts(true);
  const got = await drain(await p.readRangeStream('big.bin', 5, MiB - 2, { version: md5 }));
  t.ok(got.data.equals(data.subarray(5, MiB + 3)), 'a ranged stream, byte-exact');
  t.ok((await p.readRange('big.bin', MiB, 3, { version: md5 })).equals(data.subarray(MiB)), 'a single range');
  t.equal((await drive.counts(true))[MEDIA], 2, 'two downloads');
  t.equal(downloads, 2, 'both through the proxy');
});

t.test('through the mount: byte-exact against b3sum, a cut stream resumed at the exact byte, a token expired before the read', async (t) => {
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const dir = tempDir(t, 'vdfs-gdrive-read-mnt-');
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  const size = 12 * MiB + 333;
  const data = randomBytes(size);
  const orig = join(dir, 'orig.bin');
  writeFileSync(orig, data);
  const folder = await drive.mkdir('m');
  await drive.put('big.bin', data, { base: folder });
  vdfsOk(home, ['init', '--name', 'gdrive-read']);
  vdfsOk(home, ['auth', 'gdrive', '--access-token', drive.token, '--refresh-token', drive.refreshToken, '--token-url', `${drive.root}token`]);
  vdfsOk(home, ['location', 'add', 'cloud', `gdrive://${folder}?root=${encodeURIComponent(drive.root)}`]);
  vdfsOk(home, ['scan', 'cloud']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  await drive.expire();
  await drive.counts(true);
  await drive.ranges();
  // The first long download (the read-ahead run after the first block) is cut 3 MiB + 5 bytes in.
  const CUT = 3 * MiB + 5;
  await drive.cut(CUT, 'alt=media');
  const copy = join(dir, 'copy.bin');
  const r = sh('dd', [`if=${join(mnt, 'cloud', 'big.bin')}`, `of=${copy}`, 'bs=1M'], { timeoutMs: 60_000 });
  t.equal(r.code, 0, 'dd through the mount', { stderr: r.stderr });
  t.equal(b3sum(copy), b3sum(orig), 'the bytes read are the bytes on Drive');
  const c = await drive.counts(true);
  t.equal(c.cut, 1, 'a download was cut', { c });
  t.ok((c.token ?? 0) >= 1, 'the expired token was refreshed', { c });
  const ranges = await drive.ranges();
  const cutStart = ranges.map((x) => /^bytes=(\d+)-(\d+)$/.exec(x)).find((x) => x && Number(x[2]) - Number(x[1]) + 1 > CUT);
  t.ok(cutStart, 'a long ranged request was made', { ranges });
  const resumeAt = Number(cutStart![1]) + CUT;
  t.ok(
    ranges.some((x) => x.startsWith(`bytes=${resumeAt}-`)),
    `the cut stream was asked again from byte ${resumeAt}, where it stopped`,
    { ranges },
  );
});
