// gdrive.*: a Google Drive location on the Drive-protocol test server (loopback, child process:
// there is no Internet here), read through the vdfs FUSE mount, against the official client
// (@googleapis/drive) talking to the same server in the same run.
//   gdrive.seqread.cold  MB/s of a cold sequential read (dd bs=1M) vs files.get alt=media streamed whole
//   gdrive.ttfb          ms for a 4 KiB read at a random offset of a cold file vs one ranged files.get
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { drive as driveApi } from '@googleapis/drive';
import { vdfsOk } from '../helpers/cli';
import { startMount, type RunningMount } from '../helpers/mount';
import { startDriveServer } from '../helpers/drive-server';
import { authClient } from '../../providers/gdrive/gdrive-auth';
import { coldOffsets, ddRead, dropCaches, mbps, measure, MiB, preadMs, type BenchOptions, type Result } from './lib';
import { SIZES } from './env';

type Raw = ReturnType<typeof driveApi>;

async function rawRead(raw: Raw, fileId: string, range?: string): Promise<number> {
  const r = await raw.files.get({ fileId, alt: 'media' }, { responseType: 'stream', ...(range ? { headers: { Range: range } } : {}) });
  let n = 0;
  for await (const c of r.data as unknown as Readable) n += (c as Buffer).length;
  return n;
}

export async function gdriveBench(o: BenchOptions): Promise<Result[]> {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-bench-gdrive-'));
  const drive = await startDriveServer();
  const seqBytes = SIZES[o.size].s3SeqMiB * MiB;
  const ttfbBytes = SIZES[o.size].s3TtfbMiB * MiB;
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  let m: RunningMount | undefined;
  try {
    o.log(`bench: gdrive: uploading ${seqBytes / MiB} + ${ttfbBytes / MiB} MiB to the Drive test server`);
    vdfsOk(home, ['init', '--name', 'bench-gdrive']);
    vdfsOk(home, ['auth', 'gdrive', '--access-token', drive.token, '--refresh-token', drive.refreshToken, '--token-url', `${drive.root}token`]);
    const folder = await drive.mkdir('bench');
    await drive.put('seq.bin', randomBytes(seqBytes), { base: folder });
    await drive.put('ttfb.bin', randomBytes(ttfbBytes), { base: folder });
    const idOf = async (name: string) => (await drive.get({ path: name, base: folder }))!.id;
    const [seqId, ttfbId] = [await idOf('seq.bin'), await idOf('ttfb.bin')];
    const raw = driveApi({ version: 'v3', auth: authClient(home), rootUrl: drive.root });
    vdfsOk(home, ['location', 'add', 'cloud', `gdrive://${folder}?root=${encodeURIComponent(drive.root)}`]);
    vdfsOk(home, ['scan', 'cloud']);
    /** A cold start: no daemon, no block cache, no page cache. */
    const cold = async () => {
      await m?.stop();
      vdfsOk(home, ['cache', 'clear']);
      dropCaches();
      m = await startMount(home, mnt);
    };
    const results: Result[] = [];
    results.push(
      await measure(
        o,
        {
          name: 'gdrive.seqread.cold',
          unit: 'MB/s',
          better: 'higher',
          cache: 'cold',
          note: `${seqBytes / MiB} MiB file, dd bs=1M through the FUSE mount (fresh daemon, block cache cleared) vs @googleapis/drive streaming files.get alt=media, same loopback Drive-protocol server; drop_caches before every target`,
        },
        [
          {
            name: 'vdfs',
            run: async () => {
              await cold();
              return ddRead(join(mnt, 'cloud', 'seq.bin'), seqBytes);
            },
          },
          {
            name: 'googleapis',
            run: async () => {
              dropCaches();
              const t0 = process.hrtime.bigint();
              const n = await rawRead(raw, seqId);
              if (n !== seqBytes) throw new Error(`the raw client read ${n} of ${seqBytes} bytes`);
              return mbps(n, Number(process.hrtime.bigint() - t0) / 1e9);
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
          name: 'gdrive.ttfb',
          unit: 'ms',
          better: 'lower',
          cache: 'cold',
          note: `4 KiB pread at a random offset of a ${ttfbBytes / MiB} MiB file through the mount (a block not in the block cache) vs one 4 KiB ranged files.get; drop_caches before every sample`,
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
            name: 'googleapis',
            run: async () => {
              const off = offsets[(k + 17) % offsets.length];
              dropCaches();
              const t0 = process.hrtime.bigint();
              const n = await rawRead(raw, ttfbId, `bytes=${off}-${off + 4095}`);
              if (n !== 4096) throw new Error(`the ranged read returned ${n} bytes`);
              return Number(process.hrtime.bigint() - t0) / 1e6;
            },
          },
        ],
        Math.max(o.reps, 9),
      ),
    );
    return results;
  } finally {
    await m?.stop();
    await drive.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
