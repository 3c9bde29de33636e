import t from 'tap';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tempDir, VDFS_BIN, vdfsOk } from './helpers/cli';
import { startFaultProxy } from './helpers/fault-proxy';
import { startS3Server } from './helpers/s3-server';
import { openVfsInProcess } from './helpers/vfs-in-process';

// Replicas are ranked by measured latency, not by location order (#17): two S3 locations hold
// the same content, the first one listed answers 150 ms late on every GET.

/** The CLI without blocking this process (the proxies live here). */
async function vdfsAsync(home: string, args: string[]): Promise<string> {
  const r = await promisify(execFile)(process.execPath, [VDFS_BIN, '--home', home, ...args], { timeout: 120_000 });
  return r.stdout;
}

const isGet = (req: IncomingMessage) => req.method === 'GET' && !req.url!.includes('list-type');

t.test('the replica that answers faster is read from, although it is listed second', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const data = randomBytes(4 * 1024 * 1024 + 17);
  await s3.put('slow/f.bin', data);
  await s3.put('fast/f.bin', data);
  const slow = await startFaultProxy(s3.endpoint);
  const fast = await startFaultProxy(s3.endpoint);
  t.teardown(() => slow.close());
  t.teardown(() => fast.close());
  const dir = tempDir(t);
  const homeDir = join(dir, 'home');
  vdfsOk(homeDir, ['init']);
  const uri = (p: string, endpoint: string) => s3.uri(`/${p}/`, endpoint);
  vdfsOk(homeDir, ['location', 'add', 'aslow', uri('slow', slow.endpoint)]);
  vdfsOk(homeDir, ['location', 'add', 'bfast', uri('fast', fast.endpoint)]);
  await vdfsAsync(homeDir, ['scan', '--hash']);
  const { vfs } = await openVfsInProcess(t, homeDir);
  const st = JSON.parse(await vdfsAsync(homeDir, ['stat', '/aslow/f.bin', '--json'])) as { replicas: { path: string }[] };
  t.same(
    st.replicas.map((r) => r.path),
    ['/aslow/f.bin', '/bfast/f.bin'],
    'by location order, the slow one comes first',
  );

  const gets = { slow: 0, fast: 0 };
  // A rule that only counts (it never matches), then the delay for every GET.
  slow.inject(
    { kind: 'delay', ms: 0 },
    {
      times: 1,
      match: (req) => {
        if (isGet(req)) gets.slow++;
        return false;
      },
    },
  );
  slow.inject({ kind: 'delay', ms: 150 }, { times: Infinity, match: isGet });
  fast.inject(
    { kind: 'delay', ms: 0 },
    {
      times: 1,
      match: (req) => {
        if (isGet(req)) gets.fast++;
        return false;
      },
    },
  );
  // 4 KiB reads at random offsets, each on a fresh handle: every one is a small ranged GET.
  const read = async (i: number) => {
    const off = (i * 7919 * 4096) % (data.length - 4096);
    const fh = await vfs.open('/bfast/f.bin');
    try {
      const b = await vfs.read(fh, off, 4096);
      t.ok(b.equals(data.subarray(off, off + 4096)), `read ${i}: exact bytes`);
    } finally {
      await vfs.release(fh);
    }
  };
  for (let i = 0; i < 4; i++) await read(i);
  const early = { ...gets };
  for (let i = 4; i < 24; i++) await read(i);
  const late = { slow: gets.slow - early.slow, fast: gets.fast - early.fast };
  t.ok(early.slow >= 1 && early.fast >= 1, 'both replicas were tried (and measured) first', { early });
  t.ok(late.fast >= 19 && late.slow <= 1, `then the fast one served ${late.fast} of 20 reads`, { late });
});
