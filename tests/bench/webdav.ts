// webdav.*: the vdfs daemon's WebDAV server, rclone serve webdav and Apache mod_dav, on loopback.
// Every request is built by webdav-request.ts (the one place for credentials).
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { dropCaches, mbps, median, MiB, measure, quiesce, sh, shOk, summarize, until, warmFreePages, type BenchOptions, type Result, type Target } from './lib';
import type { Env } from './env';
import { davCurlArgs, type Dav } from './webdav-request';
import { browse } from './webdav-browse';

function davs(env: Env): Dav[] {
  const wb = join(env.data, 'wb');
  const list: Dav[] = [{ name: 'vdfs', url: env.vdfs!.url, putDir: 'w', finalDir: join(env.data, 'w'), auth: env.vdfs!.auth }];
  if (env.rcDav) list.push({ name: 'rclone', url: env.rcDav.url!, putDir: 'wb', finalDir: wb });
  if (env.apache) list.push({ name: 'apache', url: env.apache.url!, putDir: 'wb', finalDir: wb });
  return list;
}

/** curl with -w; returns one line of fields per transfer. */
function curl(d: Dav, args: string): string[][] {
  const r = sh(`curl ${davCurlArgs(d)} ${args}`, { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`curl ${args}: ${r.stderr.slice(-300)}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));
}

export async function webdavBench(env: Env, o: BenchOptions): Promise<Result[]> {
  const list = davs(env);
  const out: Result[] = [];
  const big = env.bigBytes;
  const local = (run: () => number | null): Target => ({ name: 'local', run });
  const each = (run: (d: Dav, rep: number) => number | null | Promise<number | null>): Target[] => list.map((d) => ({ name: d.name, run: (rep: number) => run(d, rep) }));

  const get = (d: Dav) => {
    const [[code, size, t]] = curl(d, `-o /dev/null -w '%{http_code} %{size_download} %{time_total}\\n' ${d.url}${env.bigRel}`);
    if (code !== '200' || Number(size) !== big) throw new Error(`GET: ${code}, ${size} bytes`);
    return mbps(big, Number(t));
  };
  const gets = each((d) => {
    get(d);
    return get(d);
  });
  out.push(
    await measure(
      o,
      { name: 'webdav.get', unit: 'MB/s', better: 'higher', cache: 'warm', note: `curl GET of the ${env.sizes.bigMiB} MiB file on loopback, warm (second of two); local: warm dd` },
      [
        gets[0],
        local(() => {
          sh(`cat ${join(env.data, env.bigRel)} > /dev/null`);
          const r = shOk(`dd if=${join(env.data, env.bigRel)} of=/dev/null bs=1M 2>&1`);
          return mbps(big, r.seconds);
        }),
        ...gets.slice(1),
      ],
    ),
  );

  const n = 21;
  const mid = Math.floor(big / 2 / MiB) * MiB + 12345; // unaligned, in the middle
  const range = `${mid}-${mid + MiB - 1}`;
  const ranges = each((d) => {
    const urls = Array.from({ length: n }, () => `-o /dev/null ${d.url}${env.bigRel}`).join(' ');
    const rows = curl(d, `-r ${range} -w '%{http_code} %{size_download} %{time_total}\\n' ${urls}`);
    for (const [code, size] of rows) if (code !== '206' || Number(size) !== MiB) throw new Error(`range GET: ${code}, ${size} bytes`);
    return median(rows.slice(1).map((r) => Number(r[2]) * 1000)); // first one warms the connection
  });
  out.push(
    await measure(
      o,
      {
        name: 'webdav.range',
        unit: 'ms',
        better: 'lower',
        cache: 'warm',
        note: `median of ${n - 1} curl GETs of 1 MiB at byte ${mid} (one keep-alive connection), warm; local: pread of the same range`,
      },
      [
        ranges[0],
        local(() => {
          const fd = openSync(join(env.data, env.bigRel), 'r');
          const buf = Buffer.allocUnsafe(MiB);
          const ts: number[] = [];
          try {
            for (let i = 0; i < n; i++) {
              const t0 = process.hrtime.bigint();
              readSync(fd, buf, 0, MiB, mid);
              ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
            }
          } finally {
            closeSync(fd);
          }
          return median(ts.slice(1));
        }),
        ...ranges.slice(1),
      ],
    ),
  );

  const entries = env.sizes.dirEntries;
  const propfinds = each((d) => {
    const xml = join(env.root, `propfind-${d.name}.xml`);
    const cmd = `-X PROPFIND -H 'Depth: 1' -H 'Content-Type: application/xml' --data '<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>' -o ${xml} -w '%{http_code} %{time_total}\\n' ${d.url}dir10k/`;
    curl(d, cmd);
    const [[code, t]] = curl(d, cmd);
    if (code !== '207') throw new Error(`PROPFIND: ${code}`);
    const count = Number(sh(`grep -o '<[A-Za-z0-9]*:\\?response[ >]' ${xml} | wc -l`).stdout.trim());
    if (count < entries) throw new Error(`PROPFIND listed ${count} of ${entries + 1} responses`);
    return Number(t);
  });
  out.push(
    await measure(
      o,
      {
        name: 'webdav.propfind',
        unit: 's',
        better: 'lower',
        cache: 'warm',
        note: `PROPFIND Depth 1 allprop on a ${entries}-entry collection, warm (second of two); local: find -maxdepth 1 -printf`,
      },
      [propfinds[0], local(() => shOk(`find ${join(env.data, 'dir10k')} -maxdepth 1 -printf '%s %T@ %f\\n' > /dev/null`).seconds), ...propfinds.slice(1)],
    ),
  );

  out.push(...(await putFigures(env, o, list)));

  const { photos, photoKiB } = env.sizes;
  const browseNote = `PROPFIND Depth 1 of a folder of ${photos} photos of ${photoKiB} KiB, then GET of the first 64 KiB of each over 6 parallel keep-alive connections (a file manager opening the folder); every file and byte checked`;
  const browses = (cold: boolean) =>
    each(async (d) => {
      if (cold) dropCaches();
      return browse(d, 'photos/', photos, photoKiB * 1024);
    });
  out.push(
    await measure(
      o,
      { name: 'webdav.browse.cold', unit: 's', better: 'lower', cache: 'cold', note: `${browseNote}; after drop_caches (the servers' in-memory caches stay warm)` },
      browses(true),
    ),
  );
  out.push(
    await measure(
      o,
      { name: 'webdav.browse.warm', unit: 's', better: 'lower', cache: 'warm', note: `${browseNote}; the folder opened just before` },
      each(async (d) => {
        await browse(d, 'photos/', photos, photoKiB * 1024);
        return browse(d, 'photos/', photos, photoKiB * 1024);
      }),
    ),
  );
  return out;
}

/**
 * webdav.put (equal durability: the answer, then an fsync of the file where it landed, for
 * every target; vdfs fsyncs before it answers, the others do not) and webdav.put.accepted
 * (the answer alone), from the same runs.
 */
async function putFigures(env: Env, o: BenchOptions, list: Dav[]): Promise<Result[]> {
  const big = env.bigBytes;
  const src = join(env.data, env.bigRel);
  const accepted: Record<string, number[]> = {};
  const landed = (f: string) => existsSync(f) && statSync(f).size === big;
  const durable = async (name: string, put: () => number, file: string): Promise<number> => {
    const secs = put();
    (accepted[name] ??= []).push(mbps(big, secs));
    const t0 = process.hrtime.bigint();
    await until(
      () => landed(file),
      120_000,
      () => `${file} is not ${big} bytes`,
    );
    shOk(`sync ${file}`);
    return mbps(big, secs + Number(process.hrtime.bigint() - t0) / 1e9);
  };
  // Not timed: vdfs re-hashes the file it was given, then forgets it; no target runs while a
  // server is still busy with the last one's, and each starts on memory the VM has (lib.ts).
  const beforeRun = async () => {
    await quiesce([env.vdfs?.pid, env.rcDav?.pid, env.apache?.pid]);
    warmFreePages(env.root, env.sizes.bigMiB);
  };
  const targets: Target[] = list.map((d) => ({
    name: d.name,
    run: async (rep: number) => {
      await beforeRun();
      sh(`cat ${src} > /dev/null`);
      const rel = `${d.putDir}/put-${d.name}-${rep}.bin`;
      try {
        return await durable(
          d.name,
          () => {
            const [[code, size, t]] = curl(d, `-T ${src} -o /dev/null -w '%{http_code} %{size_upload} %{time_total}\\n' ${d.url}${rel}`);
            if (!['200', '201', '204'].includes(code) || Number(size) !== big) throw new Error(`PUT: ${code}, ${size} bytes`);
            return Number(t);
          },
          join(d.finalDir, `put-${d.name}-${rep}.bin`),
        );
      } finally {
        sh(`curl ${davCurlArgs(d)} -X DELETE -o /dev/null ${d.url}${rel}`);
      }
    },
  }));
  const dst = join(env.data, 'wb', 'put-local.bin');
  targets.splice(1, 0, {
    name: 'local',
    run: async () => {
      await beforeRun();
      sh(`cat ${src} > /dev/null`);
      try {
        return await durable('local', () => shOk(`dd if=${src} of=${dst} bs=1M 2>&1`).seconds, dst);
      } finally {
        sh(`rm -f ${dst}`);
      }
    },
  });
  const note = `curl -T of the ${env.sizes.bigMiB} MiB file (source in the page cache) into a new file; local: dd of the same file`;
  const put = await measure(
    o,
    { name: 'webdav.put', unit: 'MB/s', better: 'higher', cache: 'warm', durability: 'answered, then fsync of the file where it landed (equal for every target)', note },
    targets,
  );
  const acc = summarize(
    o,
    {
      name: 'webdav.put.accepted',
      unit: 'MB/s',
      better: 'higher',
      cache: 'warm',
      durability: 'until the server answered (vdfs fsyncs before answering, rclone and Apache do not; local: dd without fsync)',
      note: `the same runs as webdav.put, clock stopped at the answer`,
    },
    targets.map((t) => t.name),
    accepted,
  );
  return [put, acc];
}
