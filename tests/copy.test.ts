import t from 'tap';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { b3sum, tempDir, vdfs, vdfsOk, VDFS_BIN } from './helpers/cli';
import { startS3Server } from './helpers/s3-server';
import { blake3Hex } from '../cache/checksum';

const MiB = 1 << 20;
interface CopyReport {
  from: string;
  to: string;
  hash: string;
  size: number;
  source: string | null;
  dryRun: boolean;
  serverSide: boolean;
  alreadyThere: boolean;
  resumedBytes: number;
  fetchedBytes: number;
}
interface Whereis {
  replicas: { path: string }[];
}

t.test('copy --to another local location and to S3: verified, indexed, dry run, resumed after kill -9', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  mkdirSync(a);
  mkdirSync(b);
  const big = randomBytes(8 * MiB + 4321);
  writeFileSync(join(a, 'big.bin'), big);
  const hash = b3sum(join(a, 'big.bin'));
  await s3.put('p/readme.txt', 'already here\n');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'a', a]);
  vdfsOk(home, ['location', 'add', 'b', b]);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/p')]);
  vdfsOk(home, ['scan']);

  const dry = vdfsOk(home, ['copy', '/a/big.bin', '--to', 'b:backup/2026', '--dry-run', '--json']).json<CopyReport>();
  t.match(dry, { from: '/a/big.bin', to: '/b/backup/2026/big.bin', hash, dryRun: true, serverSide: false, source: '/a/big.bin', fetchedBytes: 0 });
  t.notOk(existsSync(join(b, 'backup')), 'a dry run writes nothing');

  const local = vdfsOk(home, ['copy', '/a/big.bin', '--to', 'b:backup/2026', '--json']).json<CopyReport>();
  t.match(local, { to: '/b/backup/2026/big.bin', dryRun: false, alreadyThere: false, fetchedBytes: big.length });
  t.equal(b3sum(join(b, 'backup', '2026', 'big.bin')), hash, 'the local copy is byte-exact (b3sum)');
  let w = vdfsOk(home, ['whereis', '/a/big.bin', '--json']).json<Whereis>();
  t.same(w.replicas.map((r) => r.path).sort(), ['/a/big.bin', '/b/backup/2026/big.bin'], 'indexed: whereis lists the new replica');
  t.same(vdfsOk(home, ['copy', '/a/big.bin', '--to', 'b:backup/2026', '--json']).json<CopyReport>().alreadyThere, true, 'a second run finds it there');
  writeFileSync(join(b, 'clash.bin'), 'other content');
  vdfsOk(home, ['scan', 'b']);
  mkdirSync(join(a, 'x'));
  writeFileSync(join(a, 'x', 'clash.bin'), 'mine');
  vdfsOk(home, ['scan', 'a']);
  t.equal(vdfs(home, ['copy', '/a/x/clash.bin', '--to', 'b']).code, 4, 'other content at the target: EEXIST, never overwritten');

  // To S3, slowly, killed with -9 half-way: the next run resumes from the verified prefix.
  const child = spawn(process.execPath, [VDFS_BIN, '--home', home, 'copy', '/a/big.bin', '--to', 'cloud:photos', '--rate', '2', '--json'], { stdio: 'ignore' });
  const partDir = join(home, 'copies');
  const deadline = Date.now() + 30_000;
  const partSize = () => (existsSync(partDir) ? readdirSync(partDir).reduce((s, f) => s + statSync(join(partDir, f)).size, 0) : 0);
  while (partSize() < 3 * MiB) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the copy did not get going (exit ${child.exitCode})`);
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.ok(partSize() < big.length, 'killed before it finished');
  const resumed = vdfsOk(home, ['copy', '/a/big.bin', '--to', 'cloud:photos', '--json']).json<CopyReport>();
  t.ok(resumed.resumedBytes >= 2 * MiB, `resumed after ${resumed.resumedBytes} verified bytes`);
  t.equal(resumed.resumedBytes + resumed.fetchedBytes, big.length, 'fetched only the rest');
  const obj = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'p/photos/big.bin' }));
  const body = Buffer.from(await obj.Body!.transformToByteArray());
  t.equal(blake3Hex(body), hash, 'the S3 object is byte-exact');
  w = vdfsOk(home, ['whereis', '/a/big.bin', '--json']).json<Whereis>();
  t.same(w.replicas.map((r) => r.path).sort(), ['/a/big.bin', '/b/backup/2026/big.bin', '/cloud/photos/big.bin'], 'the S3 replica is indexed');
  t.same(readdirSync(partDir), [], 'no partial file left');
  // Within the bucket: S3 copies its own object (CopyObject of the indexed version), no bytes through vdfs.
  const server = vdfsOk(home, ['copy', '/cloud/photos/big.bin', '--to', 'cloud:archive', '--json']).json<CopyReport & { serverSide: boolean }>();
  t.match(server, { to: '/cloud/archive/big.bin', serverSide: true, fetchedBytes: 0, source: '/cloud/photos/big.bin' });
  const copied = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'p/archive/big.bin' }));
  t.equal(blake3Hex(Buffer.from(await copied.Body!.transformToByteArray())), hash, 'the server-side copy is byte-exact');
  t.equal(vdfsOk(home, ['whereis', '/a/big.bin', '--json']).json<Whereis>().replicas.length, 4, 'and indexed');
  const c = vdfsOk(home, ['copies', '/a/big.bin', '--json']).json<{ histogram: Record<string, number> }>();
  t.equal(c.histogram['3+'], 1, 'copies counts three locations');
  t.equal(vdfs(home, ['copy', '/a/big.bin', '--to', 'nope']).code, 3, 'an unknown location: ENOENT');
  t.equal(vdfs(home, ['copy', '/a', '--to', 'b']).code, 3, 'a folder: EISDIR');
});
