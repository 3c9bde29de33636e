/**
 * Drive speed figures for docs/gdrive.md: ranged reads through the mount against the raw
 * client streaming from the same loopback server, and listing 10,000 files against the raw
 * paged listing. Run: npx tsc -p . && node dist/tests/bench/gdrive-bench.js
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { drive as driveApi } from '@googleapis/drive';
import { vdfsOk } from '../helpers/cli';
import { sh, startMount } from '../helpers/mount';
import { startDriveServer } from '../helpers/drive-server';
import { GdriveProvider } from '../../providers/gdrive/gdrive-provider';
import { authClient } from '../../providers/gdrive/gdrive-auth';
import { parseGdriveUri } from '../../providers/gdrive/gdrive-uri';

const MiB = 1 << 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const drive = await startDriveServer();
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-gd-bench-'));
  try {
    const home = join(dir, 'home');
    vdfsOk(home, ['init']);
    vdfsOk(home, ['auth', 'gdrive', '--access-token', drive.token, '--refresh-token', drive.refreshToken, '--token-url', `${drive.root}token`]);
    const folder = await drive.mkdir('bench');
    const size = 64 * MiB;
    await drive.put('big.bin', randomBytes(size), { base: folder });
    const id = (await drive.get({ path: 'big.bin', base: folder }))!.id;
    const raw = driveApi({ version: 'v3', auth: authClient(home), rootUrl: drive.root });
    const rawRuns: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = process.hrtime.bigint();
      const r = await raw.files.get({ fileId: id, alt: 'media' }, { responseType: 'stream' });
      let n = 0;
      for await (const c of r.data as unknown as Readable) n += (c as Buffer).length;
      if (n !== size) throw new Error(`raw read ${n}`);
      rawRuns.push(size / MiB / (Number(process.hrtime.bigint() - t0) / 1e9));
    }
    vdfsOk(home, ['location', 'add', 'cloud', `gdrive://${folder}?root=${encodeURIComponent(drive.root)}`]);
    vdfsOk(home, ['scan', 'cloud']);
    const mountRuns: number[] = [];
    for (let i = 0; i < 3; i++) {
      vdfsOk(home, ['cache', 'clear']);
      const m = await startMount(home, join(dir, 'mnt'));
      const t0 = process.hrtime.bigint();
      const r = sh('dd', [`if=${join(dir, 'mnt', 'cloud', 'big.bin')}`, 'of=/dev/null', 'bs=1M'], { timeoutMs: 120_000 });
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      await m.stop();
      if (r.code !== 0) throw new Error(`dd: ${r.stderr}`);
      mountRuns.push(size / MiB / secs);
    }
    console.log(
      `read 64 MiB: raw client stream ${median(rawRuns).toFixed(0)} MiB/s, through the mount (cold cache) ${median(mountRuns).toFixed(0)} MiB/s, ratio ${(median(mountRuns) / median(rawRuns)).toFixed(2)}`,
    );

    const many = await drive.mkdir('many');
    for (let i = 0; i < 10_000; i += 500) await Promise.all(Array.from({ length: 500 }, (_, j) => drive.put(`f${String(i + j).padStart(5, '0')}.txt`, 'x', { base: many })));
    const rawList: number[] = [];
    const walkList: number[] = [];
    for (let k = 0; k < 3; k++) {
      let t0 = process.hrtime.bigint();
      let n = 0;
      let pageToken: string | undefined;
      do {
        const r = await raw.files.list({
          q: `'${many}' in parents and trashed = false`,
          pageSize: 1000,
          pageToken,
          fields: 'nextPageToken,files(id,name,mimeType,size,md5Checksum,version,modifiedTime,createdTime,parents,trashed,shortcutDetails(targetId,targetMimeType))',
        });
        n += r.data.files?.length ?? 0;
        pageToken = r.data.nextPageToken ?? undefined;
      } while (pageToken);
      rawList.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const p = new GdriveProvider(parseGdriveUri(`gdrive://${many}?root=${encodeURIComponent(drive.root)}`), { homeDir: home });
      t0 = process.hrtime.bigint();
      let w = 0;
      const { walkTree } = await import('../../providers/gdrive/gdrive-walk');
      for await (const o of walkTree(p, 'bench')) {
        void o;
        w++;
      }
      walkList.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (n !== 10_000 || w !== 10_000) throw new Error(`listed ${n} / walked ${w}`);
      await p.close();
    }
    console.log(
      `list 10,000 files: raw paged files.list ${median(rawList).toFixed(0)} ms, provider walk ${median(walkList).toFixed(0)} ms, ratio ${(median(walkList) / median(rawList)).toFixed(2)}`,
    );
    vdfsOk(home, ['location', 'add', 'many', `gdrive://${many}?root=${encodeURIComponent(drive.root)}`]);
    let t0 = Date.now();
    vdfsOk(home, ['scan', 'many']);
    const full = Date.now() - t0;
    t0 = Date.now();
    vdfsOk(home, ['scan', 'many']);
    console.log(`vdfs scan of 10,000 files: first ${full} ms, unchanged rescan (changes.list) ${Date.now() - t0} ms`);
  } finally {
    await drive.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
