// webdav.*: curl against the vdfs daemon's WebDAV server, rclone serve webdav and Apache mod_dav, on loopback.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { mbps, median, MiB, measure, sh, shOk, type BenchOptions, type Result, type Target } from './lib';
import type { Env } from './env';

interface Dav { name: string; url: string; putDir: string }

function davs(env: Env): Dav[] {
  const list: Dav[] = [{ name: 'vdfs', url: env.vdfs!.url, putDir: 'w' }];
  if (env.rcDav) list.push({ name: 'rclone', url: env.rcDav.url!, putDir: 'wb' });
  if (env.apache) list.push({ name: 'apache', url: env.apache.url!, putDir: 'wb' });
  return list;
}

/** curl with -w; returns one line of fields per transfer. */
function curl(args: string): string[][] {
  const r = sh(`curl -sS --noproxy '*' ${args}`, { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`curl ${args}: ${r.stderr.slice(-300)}`);
  return r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
}

export async function webdavBench(env: Env, o: BenchOptions): Promise<Result[]> {
  const list = davs(env);
  const out: Result[] = [];
  const big = env.bigBytes;
  const local = (run: () => number | null): Target => ({ name: 'local', run });
  const each = (run: (d: Dav, rep: number) => number | null): Target[] => list.map((d) => ({ name: d.name, run: (rep: number) => run(d, rep) }));

  const get = (d: Dav) => {
    const [[code, size, t]] = curl(`-o /dev/null -w '%{http_code} %{size_download} %{time_total}\\n' ${d.url}${env.bigRel}`);
    if (code !== '200' || Number(size) !== big) throw new Error(`GET: ${code}, ${size} bytes`);
    return mbps(big, Number(t));
  };
  const gets = each((d) => { get(d); return get(d); });
  out.push(await measure(o, { name: 'webdav.get', unit: 'MB/s', better: 'higher', note: `curl GET of the ${env.sizes.bigMiB} MiB file on loopback, warm (second of two)` },
    [gets[0], local(() => { sh(`cat ${join(env.data, env.bigRel)} > /dev/null`); const r = shOk(`dd if=${join(env.data, env.bigRel)} of=/dev/null bs=1M 2>&1`); return mbps(big, r.seconds); }), ...gets.slice(1)]));

  const n = 21;
  const mid = Math.floor(big / 2 / MiB) * MiB + 12345; // unaligned, in the middle
  const range = `${mid}-${mid + MiB - 1}`;
  const ranges = each((d) => {
    const urls = Array.from({ length: n }, () => `-o /dev/null ${d.url}${env.bigRel}`).join(' ');
    const rows = curl(`-r ${range} -w '%{http_code} %{size_download} %{time_total}\\n' ${urls}`);
    for (const [code, size] of rows) if (code !== '206' || Number(size) !== MiB) throw new Error(`range GET: ${code}, ${size} bytes`);
    return median(rows.slice(1).map((r) => Number(r[2]) * 1000)); // first one warms the connection
  });
  out.push(await measure(o, { name: 'webdav.range', unit: 'ms', better: 'lower', note: `median of ${n - 1} curl GETs of 1 MiB at byte ${mid} (one keep-alive connection), warm; local: pread of the same range` },
    [ranges[0], local(() => {
      const fd = openSync(join(env.data, env.bigRel), 'r');
      const buf = Buffer.allocUnsafe(MiB);
      const ts: number[] = [];
      try {
        for (let i = 0; i < n; i++) { const t0 = process.hrtime.bigint(); readSync(fd, buf, 0, MiB, mid); ts.push(Number(process.hrtime.bigint() - t0) / 1e6); }
      } finally { closeSync(fd); }
      return median(ts.slice(1));
    }), ...ranges.slice(1)]));

  const entries = env.sizes.dirEntries;
  const propfinds = each((d) => {
    const cmd = `-X PROPFIND -H 'Depth: 1' -H 'Content-Type: application/xml' --data '<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>' -o ${join(env.root, `propfind-${d.name}.xml`)} -w '%{http_code} %{time_total}\\n' ${d.url}dir10k/`;
    curl(cmd);
    const [[code, t]] = curl(cmd);
    if (code !== '207') throw new Error(`PROPFIND: ${code}`);
    const count = Number(sh(`grep -o '<[A-Za-z0-9]*:\\?response[ >]' ${join(env.root, `propfind-${d.name}.xml`)} | wc -l`).stdout.trim());
    if (count < entries) throw new Error(`PROPFIND listed ${count} of ${entries + 1} responses`);
    return Number(t);
  });
  out.push(await measure(o, { name: 'webdav.propfind', unit: 's', better: 'lower', note: `PROPFIND Depth 1 allprop on a ${entries}-entry collection, warm (second of two); local: find -maxdepth 1 -printf` },
    [propfinds[0], local(() => shOk(`find ${join(env.data, 'dir10k')} -maxdepth 1 -printf '%s %T@ %f\\n' > /dev/null`).seconds), ...propfinds.slice(1)]));

  const src = join(env.data, env.bigRel);
  const puts = each((d, rep) => {
    sh(`cat ${src} > /dev/null`);
    const url = `${d.url}${d.putDir}/put-${d.name}-${rep}.bin`;
    try {
      const [[code, size, t]] = curl(`-T ${src} -o /dev/null -w '%{http_code} %{size_upload} %{time_total}\\n' ${url}`);
      if (!['200', '201', '204'].includes(code) || Number(size) !== big) throw new Error(`PUT: ${code}, ${size} bytes`);
      return mbps(big, Number(t));
    } finally {
      sh(`curl -sS --noproxy '*' -X DELETE -o /dev/null ${url}`);
      sh('sleep 1'); // let vdfs re-hash the new file before the next target runs
    }
  });
  out.push(await measure(o, { name: 'webdav.put', unit: 'MB/s', better: 'higher', note: `curl -T of the ${env.sizes.bigMiB} MiB file (source in page cache) into a new file; local: dd conv=fsync of the same file` },
    [puts[0], local(() => {
      const dst = join(env.data, 'wb', 'put-local.bin');
      try { return mbps(big, shOk(`dd if=${src} of=${dst} bs=1M conv=fsync 2>&1`).seconds); } finally { sh(`rm -f ${dst}`); }
    }), ...puts.slice(1)]));
  return out;
}
