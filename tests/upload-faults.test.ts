import t from 'tap';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tempDir, VDFS_BIN, vdfsOk } from './helpers/cli';
import { startS3Server, type S3TestServer } from './helpers/s3-server';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { Home } from '../app/home';
import { openBlockStore } from '../app/block-store';
import { createVfs } from '../mount/vfs';
import { providerOpener } from '../app/provider-registry';
import { UploadStore } from '../index/upload-store';
import { blake3Hex } from '../cache/checksum';

// The upload queue against a real S3 server (s3rver) behind a fault proxy: the bucket becomes
// unreachable the way a network fails (connections reset), for exactly the requests named.

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function keys(s3: S3TestServer): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'w/' }));
  return (r.Contents ?? []).map((c) => c.Key!).sort();
}

async function object(s3: S3TestServer, key: string): Promise<Buffer> {
  const r = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** A home with one S3 location `cloud` (prefix w/) reached through a fault proxy. */
async function setup(t: Parameters<typeof tempDir>[0], uploadDelay: number): Promise<{ home: string; s3: S3TestServer; proxy: FaultProxy }> {
  const s3 = await startS3Server('vdfs-test', 0); // signatures checked, '(' in conflict copies' names included (see helpers/s3-server.ts)
  t.teardown(() => s3.cleanup());
  const proxy = await startFaultProxy(s3.endpoint);
  t.teardown(() => proxy.close());
  await s3.put('w/existing.txt', 'original\n');
  const home = join(tempDir(t), 'home');
  vdfsOk(home, ['init', '--name', 'writer']);
  vdfsOk(home, ['config', 'set', 'upload.delay', String(uploadDelay)]);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/w', proxy.endpoint)]);
  // Asynchronously: the proxy answers from this process's event loop.
  await promisify(execFile)(VDFS_BIN, ['--home', home, 'scan', 'cloud'], { timeout: 60_000 });
  return { home, s3, proxy };
}

/** The VFS in-process with its upload queue running, as the daemon runs it. */
async function openVfs(home: string) {
  const h = Home.open(home);
  const blocks = await openBlockStore(h);
  const vfs = await createVfs(h, { blocks, uploads: true, openProvider: providerOpener(h) });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await vfs.close();
    await blocks.close();
    h.close();
  };
  return { h, vfs, close };
}

async function writeFile(vfs: Awaited<ReturnType<typeof createVfs>>, path: string, data: Buffer): Promise<void> {
  const fh = await vfs.open(path, { write: true, create: true, truncate: true, mode: 0o644 });
  await vfs.write(fh, 0, data);
  await vfs.release(fh);
}

const isReq = (req: IncomingMessage, method: string, key: string) => req.method === method && (req.url ?? '').split('?')[0] === `/vdfs-test/${key}`;

t.test('an upload that lands after its file was renamed: the leftover is deleted, retried while the bucket is unreachable, across a restart', async (t) => {
  // Nothing is uploaded in the first session (upload.delay 60 s): the second one finds both
  // files due at once and uploads them in order, so b's upload starts after b was renamed.
  const { home, s3, proxy } = await setup(t, 60);
  const a = randomBytes(256 * 1024 + 5);
  const b = randomBytes(70_000);
  const s1 = await openVfs(home);
  t.teardown(s1.close);
  await writeFile(s1.vfs, '/cloud/a.bin', a);
  await writeFile(s1.vfs, '/cloud/b.bin', b);
  await s1.close();
  vdfsOk(home, ['config', 'set', 'upload.delay', '0']);

  let aStarted = false;
  proxy.inject({ kind: 'delay', ms: 1500 }, { match: (req) => isReq(req, 'PUT', 'w/a.bin') && (aStarted = true) });
  // The leftover cannot be deleted: every DELETE of it is cut off.
  proxy.inject({ kind: 'reset' }, { times: Infinity, match: (req) => isReq(req, 'DELETE', 'w/b.bin') });
  const s2 = await openVfs(home);
  t.teardown(s2.close);
  await until('the upload of a.bin to start', () => aStarted);
  await s2.vfs.rename('/cloud/b.bin', '/cloud/c.bin');
  const store = new UploadStore(s2.h.db);
  await until('a failed attempt to delete the leftover', () => store.remoteDeletes().some((r) => r.path === 'b.bin' && r.attempts >= 1));
  const owed = store.remoteDeletes();
  t.equal(owed.length, 1, 'one delete owed');
  t.match(owed[0].last_error, /^EHOSTDOWN: /, 'recorded with its code');
  t.ok((await keys(s3)).includes('w/b.bin'), 'the leftover is still in the bucket (the delete failed)');
  await until('the renamed file to be uploaded under its new name', async () => (await keys(s3)).includes('w/c.bin'));
  t.equal(blake3Hex(await object(s3, 'w/c.bin')), blake3Hex(b), "c.bin holds b's bytes");
  await s2.close();
  t.equal(
    vdfsOk(home, ['status', '--json']).json<{ uploads: { remoteDeletes: number } }>().uploads.remoteDeletes,
    1,
    'vdfs status shows the delete still owed after the daemon stopped',
  );

  // After a restart with the bucket reachable again, the owed delete is done.
  proxy.clear();
  const s3rd = await openVfs(home);
  t.teardown(s3rd.close);
  await until('the leftover to be deleted', async () => !(await keys(s3)).includes('w/b.bin'));
  t.same(await keys(s3), ['w/a.bin', 'w/c.bin', 'w/existing.txt'], 'the bucket holds exactly the files the mount shows');
  t.equal(blake3Hex(await object(s3, 'w/a.bin')), blake3Hex(a), 'a.bin intact');
  t.same(new UploadStore(s3rd.h.db).remoteDeletes(), [], 'nothing owed any more');
  t.same((await s3rd.vfs.readdir('/cloud')).map((e) => e.name).sort(), ['a.bin', 'c.bin', 'existing.txt']);
});

t.test('a conflict whose remote version cannot be read (bucket unreachable) is retried, never read as a deletion', async (t) => {
  const { home, s3, proxy } = await setup(t, 0);
  const s = await openVfs(home);
  t.teardown(s.close);
  const fh = await s.vfs.open('/cloud/existing.txt', { write: true });
  await s3.put('w/existing.txt', 'changed remotely\n'); // behind vdfs's back, while open here
  // From now on only the first HEAD of existing.txt gets through (the upload's version check,
  // which finds the change): reading theirs afterwards fails as if the network were down.
  let heads = 0;
  proxy.inject({ kind: 'reset' }, { times: Infinity, match: (req) => isReq(req, 'HEAD', 'w/existing.txt') && ++heads > 1 });
  await s.vfs.write(fh, 0, Buffer.from('ours'));
  await s.vfs.release(fh);
  const store = new UploadStore(s.h.db);
  await until('the upload to fail on reading theirs', () => heads > 1 && store.all().every((r) => r.path !== 'existing.txt' || r.attempts >= 1));
  t.equal((await s.vfs.getattr('/cloud/existing.txt')).size, 'original\n'.length, 'the file is still there (not read as deleted)');
  const row = store.pending(s.h.locations.find('cloud')!.id, 'existing.txt');
  t.ok(row, 'its upload is still queued');
  t.match(row?.last_error, /^EHOSTDOWN: /, 'failed with EHOSTDOWN, to be retried');
  t.same(
    (await keys(s3)).filter((k) => k.includes('(conflict ')),
    [],
    'no conflict copy placed yet',
  );

  proxy.clear();
  let copies: string[] = [];
  await until(
    'the conflict copy',
    async () => (copies = (await keys(s3)).filter((k) => k.includes('(conflict '))).length === 1 && !store.pending(s.h.locations.find('cloud')!.id, 'existing.txt'),
  );
  t.equal((await object(s3, 'w/existing.txt')).toString(), 'changed remotely\n', 'their version is kept');
  t.equal((await object(s3, copies[0])).toString(), 'oursinal\n', 'ours is in the copy');
  t.equal((await s.vfs.getattr('/cloud/existing.txt')).size, 'changed remotely\n'.length, 'the index describes theirs');
  t.equal((await keys(s3)).filter((k) => k.includes('(conflict ')).length, 1, 'exactly one conflict copy');
});
