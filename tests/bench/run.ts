// npm run bench -- --scale [--files N]   (tests/bench/scale.ts)
// npm run bench [-- --quick] [--json] [--reps N] [--only scan,fuse,cache,webdav,s3,peer] [--no-install] [--save FILE.json]
// Generates its own data, runs vdfs and every installed baseline interleaved, prints medians and ratios.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem, release, hostname } from 'node:os';
import { Env } from './env';
import { peakRssMB, round, sh, type BenchOptions, type Result } from './lib';
import { scanBench } from './scan';
import { fuseBench } from './fuse';
import { cacheBench } from './cache';
import { webdavBench } from './webdav';
import { s3Bench } from './s3';
import { peerBench } from './peer-bench';
import { formatTable } from './table';

function parseArgs(argv: string[]): BenchOptions & { install: boolean; save?: string } {
  const has = (f: string) => argv.includes(f);
  const val = (f: string) => { const i = argv.indexOf(f); return i >= 0 ? argv[i + 1] : undefined; };
  const json = has('--json');
  const quick = has('--quick');
  const reps = Number(val('--reps') ?? 3);
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps takes a whole number >= 1');
  return {
    quick, json, reps,
    only: val('--only')?.split(','),
    install: !has('--no-install'),
    save: val('--save'),
    log: (m: string) => process.stderr.write(`${m}\n`),
  };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => res(p)); });
  });
}

function machine(env: Env, o: BenchOptions): Record<string, unknown> {
  const first = (cmd: string) => sh(cmd).stdout.split('\n')[0].trim() || null;
  let fuseNative: string | null = null;
  try { fuseNative = (require('fuse-native/package.json') as { version: string }).version; } catch { /* not installed */ }
  return {
    host: hostname(),
    os: first(`. /etc/os-release && echo "$PRETTY_NAME"`),
    kernel: release(),
    cpu: cpus()[0]?.model ?? null,
    cpus: cpus().length,
    memGiB: round(totalmem() / 2 ** 30, 1),
    disk: first(`df -h --output=source,fstype,size ${env.root} | tail -1`),
    node: process.version,
    fuseNative,
    rclone: first('rclone version 2>/dev/null'),
    apache: first('/usr/sbin/apache2 -v 2>/dev/null'),
    fio: first('fio --version 2>/dev/null'),
    b3sum: first('b3sum --version 2>/dev/null'),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    mode: o.quick ? 'quick' : 'full',
    reps: o.reps,
    sizes: env.sizes,
    date: new Date().toISOString(),
    note: 'shared machine: medians of interleaved runs; trust the ratios more than the absolute figures',
  };
}

async function main(): Promise<number> {
  // The scale bench (issue 19) is its own script with its own options.
  if (process.argv.includes('--scale')) {
    const { spawnSync } = await import('node:child_process');
    return spawnSync(process.execPath, [`${__dirname}/scale.js`, ...process.argv.slice(2).filter((a) => a !== '--scale')], { stdio: 'inherit' }).status ?? 1;
  }
  const o = parseArgs(process.argv.slice(2));
  const env = new Env(o);
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return;
    stopping = true;
    o.log(`bench: ${sig}, cleaning up`);
    void env.cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  const wants = (f: string) => !o.only || o.only.includes(f);
  const results: Result[] = [];
  const t0 = Date.now();
  try {
    o.log(`bench: ${o.quick ? 'quick' : 'full'} run in ${env.root}, ${o.reps} interleaved repetitions`);
    env.generate();
    o.log(`bench: data generated (${Math.round((Date.now() - t0) / 1000)} s); indexing with vdfs scan`);
    env.setupHome();
    if (wants('scan')) results.push(...(await scanBench(env, o)));
    const [davPort, rcDavPort, apachePort] = [await freePort(), await freePort(), await freePort()];
    await env.startVdfs(davPort);
    env.rcOff = await env.startRcloneMount('off');
    env.rcFull = await env.startRcloneMount('full');
    env.rcDav = await env.startRcloneDav(rcDavPort);
    if (wants('webdav')) env.apache = await env.startApache(apachePort, o.install).catch((err) => { env.notes.apache = `did not start: ${(err as Error).message.slice(0, 200)}`; o.log(env.notes.apache); return undefined; });
    o.log(`bench: servers up (${Math.round((Date.now() - t0) / 1000)} s)`);
    const rssLog = (after: string) => o.log(`bench: vdfs daemon peak RSS after ${after}: ${Math.round(peakRssMB(env.vdfs!.pid) ?? 0)} MB`);
    rssLog('start');
    if (wants('fuse')) { results.push(...(await fuseBench(env, o))); rssLog('fuse'); }
    if (wants('cache')) { results.push(...(await cacheBench(env, o))); rssLog('cache'); }
    if (wants('webdav')) { results.push(...(await webdavBench(env, o))); rssLog('webdav'); }
    if (wants('s3')) results.push(...(await s3Bench(o)));
    if (wants('peer')) results.push(...(await peerBench(o)));
    const rss = peakRssMB(env.vdfs!.pid);
    const bases = [env.rcFull, env.rcOff, env.rcDav].filter((s) => s !== undefined).map((s) => ({ name: s!.name === 'rclone' ? 'rclone-webdav' : s!.name, value: peakRssMB(s!.pid) }));
    results.push({
      name: 'daemon.rss', unit: 'MB', better: 'lower', vdfs: rss === null ? null : round(rss),
      baselines: bases.map((b) => ({ name: b.name, value: b.value === null ? null : round(b.value), ratio: rss && b.value ? round(b.value / rss, 2) : null })),
      note: 'peak RSS (VmHWM) over the whole run; the vdfs daemon served FUSE and WebDAV at once, each rclone process one front end (rclone-full restarted for each cold read)',
    });
    if (env.notes.apache) o.log(`bench: apache: ${env.notes.apache}`);
    o.log(`bench: done in ${Math.round((Date.now() - t0) / 1000)} s`);
  } finally {
    const m = machine(env, o);
    if (Object.keys(env.notes).length) m.baselineNotes = env.notes;
    await env.cleanup();
    const clean = results.map(({ samples, ...r }) => (o.json ? r : { ...r, samples }));
    if (o.save) writeFileSync(o.save, JSON.stringify({ machine: m, results }, null, 2) + '\n');
    if (o.json) process.stdout.write(JSON.stringify({ machine: m, results: clean }, null, 2) + '\n');
    else process.stdout.write(formatTable(m, results) + '\n');
  }
  return 0;
}

main().then((code) => process.exit(code), (err) => { process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`); process.exit(1); });
