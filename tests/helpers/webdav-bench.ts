/**
 * WebDAV measurements (never asserted in tests): GET throughput of a large file, latency
 * of a 1 MiB range from its middle, and PROPFIND Depth 1 of a 10,000-entry collection,
 * each against `vdfs serve --webdav` in a child process, medians printed as JSON.
 * Usage: npx tsc -p . && node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs tests/helpers/webdav-bench.ts [FILE_MIB=2048]
 */
import { mkdirSync, openSync, closeSync, writeSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { authHeaderFor, startWebdavServer } from './webdav';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function timed(port: number, method: string, path: string, headers: Record<string, string>): Promise<{ ms: number; bytes: number; status: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = request({ host: '127.0.0.1', port, method, path, headers: { Authorization: authHeaderFor(port), ...headers }, agent }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes, status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const mib = Number(process.argv[2] ?? 2048);
  const cleanups: (() => unknown)[] = [];
  const t = { teardown: (fn: () => unknown) => cleanups.push(fn) };
  try {
    const srv = await startWebdavServer(t, {
      seed: (dir) => {
        const fd = openSync(join(dir, 'large.bin'), 'w');
        const chunk = randomBytes(1 << 20);
        for (let i = 0; i < mib; i++) writeSync(fd, chunk);
        closeSync(fd);
        mkdirSync(join(dir, 'many'));
        for (let i = 0; i < 10_000; i++) closeSync(openSync(join(dir, 'many', `file-${String(i).padStart(5, '0')}.txt`), 'w'));
      },
    });
    const size = mib * 1024 * 1024;
    const get: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await timed(srv.port, 'GET', '/loc/large.bin', {});
      if (r.bytes !== size) throw new Error(`GET returned ${r.bytes} bytes`);
      get.push(size / 1e9 / (r.ms / 1000));
    }
    const range: number[] = [];
    const mid = Math.floor(size / 2);
    for (let i = 0; i < 51; i++) range.push((await timed(srv.port, 'GET', '/loc/large.bin', { Range: `bytes=${mid}-${mid + (1 << 20) - 1}` })).ms);
    const pf: number[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await timed(srv.port, 'PROPFIND', '/loc/many/', { Depth: '1' });
      if (r.status !== 207) throw new Error(`PROPFIND ${r.status}`);
      pf.push(r.ms);
    }
    process.stdout.write(
      JSON.stringify({
        fileMiB: mib,
        getGBps: Number(median(get).toFixed(2)),
        range1MiBms: Number(median(range).toFixed(2)),
        propfind10kMs: Number(median(pf).toFixed(1)),
        samples: { get: get.length, range: range.length, propfind: pf.length },
      }) + '\n',
    );
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    agent.destroy();
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
