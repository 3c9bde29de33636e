// daemon.rss.s3: peak resident memory (VmHWM) of one vdfs daemon while it streams two big S3
// objects at once, cold: one through its FUSE mount (dd bs=1M) and one through its WebDAV share
// (curl GET). The workload is 10 GB through FUSE and 4 GiB through WebDAV; the sizes
// here are SIZES[size].s3RssMiB (full: that workload; quick: 640 + 256 MiB, the same 5:2).
// Baseline: a Node process streaming the same two objects at once with the AWS SDK (the floor
// of any Node S3 client: the runtime, the SDK and its sockets).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { urlWithLogin, webdavLogin } from '../helpers/webdav';
import { vdfsOk } from '../helpers/cli';
import { startMount } from '../helpers/mount';
import type { S3TestServer } from '../helpers/s3-server';
import { dropCaches, measure, peakRssMB, type BenchOptions, type Result } from './lib';

/** Runs a command without blocking this process (the two streams run at once); rejects on a non-zero exit. */
function run(cmd: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd.slice(0, 80)}: exit ${code}: ${err.slice(0, 300)}`));
    });
  });
}

/** Streams every key at once with the SDK in a child Node process; resolves with its VmHWM in MB. */
function sdkPeak(s3: S3TestServer, keys: string[]): Promise<number> {
  const script = `
const { S3Client, GetObjectCommand } = require('@aws-sdk/client-s3');
const c = new S3Client({ endpoint: process.argv[1], region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
Promise.all(process.argv.slice(3).map(async (k) => { const o = await c.send(new GetObjectCommand({ Bucket: process.argv[2], Key: k })); for await (const _ of o.Body); }))
  .then(() => { const m = /VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8')); process.stdout.write(String(Number(m[1]) / 1024)); });`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', script, s3.endpoint, s3.bucket, ...keys], { stdio: ['ignore', 'pipe', 'pipe'], cwd: join(__dirname, '..', '..', '..') });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('exit', (code) => (code === 0 && out ? resolve(Number(out)) : reject(new Error(`sdk streamer: exit ${code}: ${err.slice(-300)}`))));
  });
}

export async function s3RssBench(o: BenchOptions, s3: S3TestServer, home: string, mnt: string, sizes: { fuseMiB: number; davMiB: number }): Promise<Result> {
  const fuseFile = join(mnt, 'cloud', 'rss-fuse.bin');
  const timeoutMs = Math.max(600_000, (sizes.fuseMiB + sizes.davMiB) * 200);
  return measure(
    o,
    {
      name: 'daemon.rss.s3',
      unit: 'MB',
      better: 'lower',
      cache: 'cold',
      note: `VmHWM of one daemon streaming ${sizes.fuseMiB} MiB from S3 through FUSE (dd bs=1M) and ${sizes.davMiB} MiB through WebDAV (curl GET) at the same time, block cache cleared, fresh daemon; vs a Node process streaming both objects with the AWS SDK at once`,
    },
    [
      {
        name: 'vdfs',
        run: async () => {
          vdfsOk(home, ['cache', 'clear']);
          dropCaches();
          const m = await startMount(home, mnt, ['--webdav', '127.0.0.1:0'], 60_000);
          try {
            const url = /vdfs serving WebDAV at (\S+)/.exec(m.output())?.[1];
            if (!url) throw new Error(`no WebDAV URL in the daemon's output: ${m.output().slice(0, 300)}`);
            await Promise.all([
              run(`dd if=${JSON.stringify(fuseFile)} of=/dev/null bs=1M status=none`, timeoutMs),
              run(`curl -sSf --noproxy '*' -o /dev/null ${JSON.stringify(urlWithLogin(url.replace(/\/?$/, '/') + 'cloud/rss-dav.bin', webdavLogin(home)))}`, timeoutMs),
            ]);
            return peakRssMB(m.proc.pid);
          } finally {
            await m.stop();
          }
        },
      },
      {
        name: 'aws-sdk',
        run: () => {
          dropCaches();
          return sdkPeak(s3, ['rss-fuse.bin', 'rss-dav.bin']);
        },
      },
    ],
  );
}
