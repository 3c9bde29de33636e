// s3.*: an S3 location on @20minutes/s3rver (loopback, child process), read through the vdfs
// FUSE mount, against the raw SDK talking to the same server in the same run.
//   s3.seqread.cold   MB/s of a cold sequential read (dd bs=1M) vs GetObject streamed whole
//   s3.ttfb           ms for a 4 KiB read at a random offset of a cold object vs one ranged GetObject
//   s3.smallfiles     MB/s reading N x 100 KiB objects whole, 8 parallel readers through the mount vs 8 concurrent GetObjects
//   s3.reread.cached  MB/s re-reading from the block cache (server stopped, page cache dropped)
//   daemon.rss.s3     MB peak RSS of one daemon streaming from S3 through FUSE and WebDAV at once (s3-rss.ts)
// Standalone: npx tsc -p . && node dist/tests/bench/s3.js [--quick] [--reps N]
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream } from 'node:fs';
import { vdfsOk } from '../helpers/cli';
import { startMount, type RunningMount } from '../helpers/mount';
import { startS3Server, type S3TestServer } from '../helpers/s3-server';
import { coldOffsets, dropCaches, mbps, measure, MiB, preadMs, shOk, type BenchOptions, type Result } from './lib';
import { SIZES } from './env';
import { s3RssBench } from './s3-rss';

async function makeObject(s3: S3TestServer, dir: string, key: string, bytes: number): Promise<void> {
  const file = join(dir, key);
  const out = createWriteStream(file);
  for (let n = 0; n < bytes; n += 8 * MiB) if (!out.write(randomBytes(Math.min(8 * MiB, bytes - n)))) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((r) => out.end(() => r()));
  await new Upload({ client: s3.client, params: { Bucket: s3.bucket, Key: key, Body: createReadStream(file) }, partSize: 16 * MiB, queueSize: 2 }).done();
  rmSync(file);
}

async function rawStream(s3: S3TestServer, key: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  let n = 0;
  for await (const c of out.Body as AsyncIterable<Buffer>) n += c.length;
  return mbps(n, Number(process.hrtime.bigint() - t0) / 1e9);
}

async function rawRange(s3: S3TestServer, key: string, offset: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key, Range: `bytes=${offset}-${offset + 4095}` }));
  for await (const _ of out.Body as AsyncIterable<Buffer>) {
    /* drain */
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const SMALL_BYTES = 100 * 1024;
const SMALL_PARALLEL = 8;

/** Runs `fn` over 0..n-1 with `width` workers; MB/s of `bytes` each. */
async function parallelMBps(n: number, width: number, bytes: number, fn: (i: number) => Promise<number>): Promise<number> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  let total = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const got = await fn(next++);
        if (got !== bytes) throw new Error(`read ${got} bytes of a ${bytes}-byte file`);
        total += got;
      }
    }),
  );
  return mbps(total, Number(process.hrtime.bigint() - t0) / 1e9);
}

async function rawGet(s3: S3TestServer, key: string): Promise<number> {
  const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  let n = 0;
  for await (const c of out.Body as AsyncIterable<Buffer>) n += c.length;
  return n;
}

function ddMBps(file: string): number {
  const t0 = process.hrtime.bigint();
  const r = shOk(`dd if=${JSON.stringify(file)} of=/dev/null bs=1M status=none && stat -c %s ${JSON.stringify(file)}`, { timeoutMs: 600_000 });
  return mbps(Number(r.stdout.trim()), Number(process.hrtime.bigint() - t0) / 1e9);
}

export async function s3Bench(o: BenchOptions): Promise<Result[]> {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-bench-s3-'));
  const seqBytes = SIZES[o.size].s3SeqMiB * MiB;
  const ttfbBytes = SIZES[o.size].s3TtfbMiB * MiB;
  const s3 = await startS3Server('bench');
  let m: RunningMount | undefined;
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  try {
    o.log(`bench: s3: uploading ${seqBytes / MiB} MiB + ${ttfbBytes / MiB} MiB to s3rver`);
    await makeObject(s3, dir, 'seq.bin', seqBytes);
    await makeObject(s3, dir, 'ttfb.bin', ttfbBytes);
    const smallCount = SIZES[o.size].s3SmallFiles;
    const smallKey = (i: number) => `small/p${String(i).padStart(5, '0')}.jpg`;
    await parallelMBps(smallCount, 16, SMALL_BYTES, async (i) => {
      await s3.put(smallKey(i), randomBytes(SMALL_BYTES));
      return SMALL_BYTES;
    });
    vdfsOk(home, ['init', '--name', 'bench-s3']);
    vdfsOk(home, ['location', 'add', 'cloud', s3.uri()]);
    vdfsOk(home, ['scan', 'cloud']);
    const mount = async () => {
      m = await startMount(home, mnt);
    };
    const unmount = async () => {
      await m?.stop();
      m = undefined;
    };
    /** A cold start: no daemon cache, no page cache. */
    const cold = async () => {
      await unmount();
      vdfsOk(home, ['cache', 'clear']);
      dropCaches();
      await mount();
    };

    const results: Result[] = [];
    results.push(
      await measure(
        o,
        {
          name: 's3.seqread.cold',
          unit: 'MB/s',
          better: 'higher',
          cache: 'cold',
          note: `${seqBytes / MiB} MiB object, dd bs=1M through the FUSE mount (block cache cleared) vs the SDK streaming GetObject, same s3rver; drop_caches before every target (s3rver's files too)`,
        },
        [
          {
            name: 'vdfs',
            run: async () => {
              await cold();
              return ddMBps(join(mnt, 'cloud', 'seq.bin'));
            },
          },
          {
            name: 'aws-sdk',
            run: () => {
              dropCaches();
              return rawStream(s3, 'seq.bin');
            },
          },
        ],
      ),
    );
    const offsets = coldOffsets(ttfbBytes);
    let k = 0;
    await cold();
    results.push(
      await measure(
        o,
        {
          name: 's3.ttfb',
          unit: 'ms',
          better: 'lower',
          cache: 'cold',
          note: `4 KiB pread at a random offset of a ${ttfbBytes / MiB} MiB object through the mount (a block not in the block cache) vs one 4 KiB ranged GetObject; drop_caches before every sample`,
        },
        [
          {
            name: 'vdfs',
            run: () => {
              const off = offsets[k++ % offsets.length];
              dropCaches();
              return preadMs(join(mnt, 'cloud', 'ttfb.bin'), off);
            },
          },
          {
            name: 'aws-sdk',
            run: () => {
              dropCaches();
              return rawRange(s3, 'ttfb.bin', offsets[(k + 17) % offsets.length]);
            },
          },
        ],
        Math.max(o.reps, 9),
      ),
    );
    results.push(
      await measure(
        o,
        {
          name: 's3.smallfiles',
          unit: 'MB/s',
          better: 'higher',
          cache: 'cold',
          note: `${smallCount} objects of 100 KiB read whole, ${SMALL_PARALLEL} parallel readers through the mount (block cache cleared, fresh mount) vs the SDK with ${SMALL_PARALLEL} concurrent GetObjects; drop_caches before every target`,
        },
        [
          {
            name: 'vdfs',
            run: async () => {
              await cold();
              return parallelMBps(smallCount, SMALL_PARALLEL, SMALL_BYTES, async (i) => (await readFile(join(mnt, 'cloud', smallKey(i)))).length);
            },
          },
          {
            name: 'aws-sdk',
            run: () => {
              dropCaches();
              return parallelMBps(smallCount, SMALL_PARALLEL, SMALL_BYTES, (i) => rawGet(s3, smallKey(i)));
            },
          },
        ],
      ),
    );
    const rss = SIZES[o.size].s3RssMiB;
    o.log(`bench: s3: uploading ${rss.fuse} + ${rss.dav} MiB for daemon.rss.s3`);
    await unmount();
    await makeObject(s3, dir, 'rss-fuse.bin', rss.fuse * MiB);
    await makeObject(s3, dir, 'rss-dav.bin', rss.dav * MiB);
    vdfsOk(home, ['scan', 'cloud']);
    results.push(await s3RssBench(o, s3, home, mnt, { fuseMiB: rss.fuse, davMiB: rss.dav }));
    // Fill the cache, then read again with the server stopped: only the block cache can answer.
    await cold();
    ddMBps(join(mnt, 'cloud', 'seq.bin'));
    await s3.stop();
    results.push(
      await measure(
        o,
        {
          name: 's3.reread.cached',
          unit: 'MB/s',
          better: 'higher',
          cache: 'cold',
          note: 'dd bs=1M of the same object again, fresh mount, page cache dropped, S3 server stopped (every byte from the block cache) vs dd of a local file',
        },
        [
          {
            name: 'vdfs',
            run: async () => {
              await unmount();
              dropCaches();
              await mount();
              return ddMBps(join(mnt, 'cloud', 'seq.bin'));
            },
          },
          {
            name: 'local-disk',
            run: () => {
              const f = join(dir, 'local.bin');
              if (k >= 0) {
                writeFileSync(f, randomBytes(seqBytes));
                k = -1;
              }
              dropCaches();
              return ddMBps(f);
            },
          },
        ],
      ),
    );
    return results;
  } finally {
    await m?.stop();
    await s3.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const reps = Number(args[args.indexOf('--reps') + 1] || 3);
  const o: BenchOptions = {
    size: args.includes('--quick') ? 'quick' : 'full',
    quick: args.includes('--quick'),
    json: false,
    reps: args.includes('--reps') ? reps : 3,
    log: (msg) => process.stderr.write(`${msg}\n`),
  };
  s3Bench(o).then(
    (r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}
