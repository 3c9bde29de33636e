// npm run bench [-- --quick | --size tiny|quick|full] [--json] [--save FILE.json] [--svg FILE.svg]
//   [--reps N] [--only scan,fuse,cache,webdav,s3,gdrive,peer,rss] [--skip rclone,apache] [--no-install]
// Generates its own data, runs vdfs and every baseline interleaved, prints medians and ratios.
// A missing tool fails the run before it starts; a failed measurement fails it at the end.
// npm run bench -- --scale [--files N]   (the million-file bench: tests/bench/scale.ts)
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem, release, hostname, loadavg } from 'node:os';
import { ROOT } from '../helpers/cli';
import { Env } from './env';
import { canDropCaches, failures, have, requireTools, round, sh, TOOLS, type BenchOptions, type Result, type SizeName } from './lib';
import { scanBench } from './scan';
import { fuseBench } from './fuse';
import { cacheBench } from './cache';
import { webdavBench } from './webdav';
import { s3Bench } from './s3';
import { gdriveBench } from './gdrive';
import { peerBench } from './peer-bench';
import { rssBench } from './rss';
import { formatTable } from './table';
import { renderSvg, type BenchDoc } from './report-svg';

const FAMILIES = ['scan', 'fuse', 'cache', 'webdav', 's3', 'gdrive', 'peer', 'rss'];

interface RunOptions extends BenchOptions {
  install: boolean;
  save?: string;
  svg?: string;
  skip: string[];
}

function parseArgs(argv: string[]): RunOptions {
  const has = (f: string) => argv.includes(f);
  const val = (f: string) => {
    const i = argv.indexOf(f);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const size = (val('--size') ?? (has('--quick') ? 'quick' : 'full')) as SizeName;
  if (!['tiny', 'quick', 'full'].includes(size)) throw new Error('--size takes tiny, quick or full');
  const reps = Number(val('--reps') ?? 3);
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps takes a whole number >= 1');
  const only = val('--only')?.split(',');
  for (const f of only ?? []) if (!FAMILIES.includes(f)) throw new Error(`--only: no family ${f} (${FAMILIES.join(', ')})`);
  const skip = val('--skip')?.split(',') ?? [];
  for (const s of skip) if (!['rclone', 'apache'].includes(s)) throw new Error(`--skip takes rclone and/or apache, not ${s}`);
  return {
    size,
    quick: size !== 'full',
    json: has('--json'),
    reps,
    only,
    skip,
    install: !has('--no-install'),
    save: val('--save'),
    svg: val('--svg'),
    log: (m: string) => process.stderr.write(`${m}\n`),
  };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/**
 * The commit measured, "+dirty" when the tree has uncommitted changes to tracked files. Read
 * when the run starts, right after the build: the tree may change while it runs.
 */
function commit(): string {
  const head = sh(`git -C ${ROOT} rev-parse HEAD`).stdout.trim() || 'unknown';
  return sh(`git -C ${ROOT} status --porcelain --untracked-files=no`).stdout.trim() ? `${head}+dirty` : head;
}

function machine(env: Env, o: RunOptions, drop: { ok: boolean; why: string }): Record<string, unknown> {
  const first = (cmd: string) => sh(cmd).stdout.split('\n')[0].trim() || null;
  let fuseNative: string | null = null;
  try {
    fuseNative = (require('fuse-native/package.json') as { version: string }).version;
  } catch {
    /* not installed */
  }
  return {
    host: hostname(),
    os: first(`. /etc/os-release && echo "$PRETTY_NAME"`),
    kernel: release(),
    cpu: cpus()[0]?.model ?? null,
    cpus: cpus().length,
    memGiB: round(totalmem() / 2 ** 30, 1),
    filesystem: first(`findmnt -n -o FSTYPE,SOURCE,OPTIONS -T ${env.root}`),
    disk: first(`df -h --output=source,fstype,size ${env.root} | tail -1`),
    node: process.version,
    fuseNative,
    rclone: o.skip.includes('rclone') ? 'skipped' : first('rclone version 2>/dev/null'),
    apache: o.skip.includes('apache') ? 'skipped' : first('/usr/sbin/apache2 -v 2>/dev/null'),
    fio: first('fio --version 2>/dev/null'),
    b3sum: first('b3sum --version 2>/dev/null'),
    git: first('git --version'),
    curl: first('curl --version'),
    cacheDrop: drop.ok ? 'ok' : `failed: ${drop.why}`,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    mode: o.size,
    reps: o.reps,
    sizes: env.sizes,
    date: new Date().toISOString(),
  };
}

async function families(env: Env, o: RunOptions, results: Result[]): Promise<void> {
  const wants = (f: string) => !o.only || o.only.includes(f);
  const t0 = Date.now();
  o.log(`bench: ${o.size} run in ${env.root}, ${o.reps} interleaved repetitions`);
  env.generate();
  o.log(`bench: data generated (${Math.round((Date.now() - t0) / 1000)} s); indexing with vdfs scan`);
  env.setupHome();
  if (wants('scan')) results.push(...(await scanBench(env, o)));
  const [davPort, rcDavPort, apachePort, rssVdfs, rssRclone] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  await env.startVdfs(davPort);
  env.rcOff = await env.startRcloneMount('off');
  env.rcFull = await env.startRcloneMount('full');
  env.rcDav = await env.startRcloneDav(rcDavPort);
  if (wants('webdav')) env.apache = await env.startApache(apachePort, o.install);
  o.log(`bench: servers up (${Math.round((Date.now() - t0) / 1000)} s)`);
  if (wants('fuse')) results.push(...(await fuseBench(env, o)));
  if (wants('cache')) results.push(...(await cacheBench(env, o)));
  if (wants('webdav')) results.push(...(await webdavBench(env, o)));
  if (wants('s3')) results.push(...(await s3Bench(o)));
  if (wants('gdrive')) results.push(...(await gdriveBench(o)));
  if (wants('peer')) results.push(...(await peerBench(o)));
  if (wants('rss')) results.push(...(await rssBench(env, o, { vdfs: rssVdfs, rclone: rssRclone })));
  o.log(`bench: done in ${Math.round((Date.now() - t0) / 1000)} s`);
}

async function main(): Promise<number> {
  // The scale bench (issue 19) is its own script with its own options.
  if (process.argv.includes('--scale')) {
    const { spawnSync } = await import('node:child_process');
    return spawnSync(process.execPath, [`${__dirname}/scale.js`, ...process.argv.slice(2).filter((a) => a !== '--scale')], { stdio: 'inherit' }).status ?? 1;
  }
  const o = parseArgs(process.argv.slice(2));
  requireTools({ ...TOOLS, fincore: 'util-linux', ...(o.skip.includes('rclone') ? {} : { rclone: 'rclone' }) });
  const wantsApache = (!o.only || o.only.includes('webdav')) && !o.skip.includes('apache');
  if (wantsApache && !have('/usr/sbin/apache2') && !(o.install && process.getuid?.() === 0 && have('apt-get'))) {
    throw new Error(
      'missing tool: /usr/sbin/apache2 (Debian package apache2-bin) for the Apache mod_dav baseline; install it (bash .ci/setup does), run as root to let the bench install it, or leave it out with --skip apache',
    );
  }
  const drop = canDropCaches();
  if (!drop.ok) o.log(`bench: WARNING: cannot drop the kernel caches (${drop.why}); every cold figure will be withheld (null). Run as root.`);
  const env = new Env(o, o.skip);
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return;
    stopping = true;
    o.log(`bench: ${sig}, cleaning up`);
    void env.cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  const results: Result[] = [];
  const measured = commit();
  // Other work on the machine skews every figure: its 1-minute load average is sampled through the run.
  const loads: number[] = [loadavg()[0]];
  const loadTimer = setInterval(() => loads.push(loadavg()[0]), 30_000).unref();
  let error: unknown;
  try {
    await families(env, o, results);
  } catch (err) {
    error = err;
  } finally {
    clearInterval(loadTimer);
    const doc: BenchDoc = { commit: measured, machine: { ...machine(env, o, drop), load: loadSummary(loads) }, results };
    if (Object.keys(env.notes).length) doc.machine.baselineNotes = env.notes;
    await env.cleanup();
    if (o.save) writeFileSync(o.save, JSON.stringify(doc, null, 2) + '\n');
    if (o.svg) writeFileSync(o.svg, renderSvg(doc));
    if (o.json) process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    else process.stdout.write(formatTable(doc) + '\n');
  }
  if (error) throw error;
  if (failures.length) {
    o.log(`bench: ${failures.length} measurement(s) failed:\n  ${failures.join('\n  ')}`);
    return 1;
  }
  return 0;
}

/** Errors of the user's setup (a missing tool, a bad option) are told plainly, without a stack. */
const plain = (m: string) => /^(missing tool|--)/.test(m);
main().then(
  (code) => process.exit(code),
  (err) => {
    const e = err as Error;
    process.stderr.write(`bench failed: ${plain(e.message) ? e.message : (e.stack ?? e)}\n`);
    process.exit(1);
  },
);

/** min, median and max of the 1-minute load average samples (the machine has `cpus` cores). */
function loadSummary(loads: number[]): { min: number; median: number; max: number } {
  const s = [...loads].sort((a, b) => a - b);
  return { min: round(s[0], 1), median: round(s[Math.floor(s.length / 2)], 1), max: round(s[s.length - 1], 1) };
}
