/**
 * Scale bench (issue 19): N empty files in N/1000 folders (plus one folder of 10,000), then
 *  - first `vdfs scan` vs `find -printf` over the same tree (warm), and the scan's max RSS;
 *  - rescan of the unchanged tree vs `find -printf`;
 *  - index bytes per entry;
 *  - `vdfs status` and `vdfs ls` of the 10,000-entry folder;
 *  - daemon (`vdfs mount`) RSS idle after its start-up rescan, and after a `find` through the mount;
 *  - a new peer receiving N entries with random hashes (tests/bench/scale-replicate.ts).
 * Medians of --runs (default 3) for the cheap figures; the first scan runs once (it is the costly one).
 *
 *   npm run bench -- --scale [--files 1000000] [--runs 3] [--dir /tmp/vdfs-scale] [--json] [--no-mount] [--no-replicate]
 *   node dist/tests/bench/scale.js [same options]
 *
 * The tree is generated once per N under --dir and reused. Not part of `npm test`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { median, round, sleep } from './lib';
import { measureReplication } from './scale-replicate';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const FILES = Number(opt('files', '1000000'));
const RUNS = Number(opt('runs', '3'));
const DIR = opt('dir', '/tmp/vdfs-scale');
const JSON_OUT = args.includes('--json');
const MOUNT = !args.includes('--no-mount');
const REPLICATE = !args.includes('--no-replicate');
const VDFS = resolve(__dirname, '..', '..', '..', 'bin', 'vdfs');
const WIDE = 10_000;
const log = (m: string) => process.stderr.write(`scale: ${m}\n`);

if (!Number.isInteger(FILES) || FILES < WIDE * 2) throw new Error(`--files takes a whole number >= ${WIDE * 2}`);

/** FILES - WIDE files in folders of 1,000, and WIDE files in `wide/`. */
function makeTree(): string {
  const root = join(DIR, `tree-${FILES}`);
  const marker = `${root}.done`;
  if (existsSync(marker)) return root;
  rmSync(root, { recursive: true, force: true });
  const rest = FILES - WIDE;
  const make = (dir: string, n: number) => {
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < n; f++) closeSync(openSync(join(dir, `f${f}`), 'w'));
  };
  for (let d = 0; d * 1000 < rest; d++) make(join(root, `d${d}`), Math.min(1000, rest - d * 1000));
  make(join(root, 'wide'), WIDE);
  writeFileSync(marker, '');
  return root;
}

interface Run {
  seconds: number;
  maxRssMB: number | null;
  stdout: string;
}

/** Runs a command under /usr/bin/time -v: wall time and max RSS. Throws on failure. */
function timedRun(argv: string[], timeoutMs = 3_600_000): Run {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-v', ...argv], { encoding: 'utf8', maxBuffer: 1 << 28, timeout: timeoutMs });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${(r.stderr ?? '').slice(-1500)}`);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr ?? '');
  return { seconds, maxRssMB: m ? Number(m[1]) / 1024 : null, stdout: r.stdout };
}

const vdfs = (home: string, ...a: string[]) => timedRun([process.execPath, VDFS, '--home', home, ...a]);
const find = (root: string) => timedRun(['sh', '-c', `find '${root}' -printf '%s %T@ %p\\n' > /dev/null`]);

function rssMB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

const mounted = (mp: string) =>
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === mp);

/** Starts `vdfs mount`, waits until mounted and quiet (start-up rescan done), measures RSS idle and after a find. */
async function daemonRss(home: string, root: string): Promise<{ idleMB: number | null; afterFindMB: number | null; findSeconds: number }> {
  const mp = join(DIR, 'mnt');
  mkdirSync(mp, { recursive: true });
  const child = spawn(process.execPath, [VDFS, '--home', home, 'mount', mp], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  try {
    const deadline = Date.now() + 600_000;
    while (!mounted(mp)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mount did not come up: ${err}`);
      await sleep(100);
    }
    // Idle: no CPU used for 10 s (the start-up rescan has finished, and so has the memory
    // reclaim after it, whose last step runs 6 s after the rescan: core/idle-gc.ts).
    let last = cpuTicks(child.pid!);
    let quietSince = Date.now();
    while (Date.now() - quietSince < 10_000 && Date.now() < deadline) {
      await sleep(500);
      const now = cpuTicks(child.pid!);
      if (now - last > 2) quietSince = Date.now();
      last = now;
    }
    const idleMB = rssMB(child.pid!);
    const f = timedRun(['sh', '-c', `find '${mp}' -printf '%s %T@ %p\\n' | wc -l`], 1_800_000);
    const seen = Number(f.stdout.trim());
    if (seen < FILES) throw new Error(`find through the mount saw ${seen} names, expected > ${FILES}`);
    return { idleMB, afterFindMB: rssMB(child.pid!), findSeconds: f.seconds };
  } finally {
    if (mounted(mp)) spawnSync('fusermount', ['-u', mp], { timeout: 30_000 });
    child.kill('SIGTERM');
    const t = Date.now();
    while (child.exitCode === null && Date.now() - t < 10_000) await sleep(100);
    if (child.exitCode === null) child.kill('SIGKILL');
    if (mounted(mp)) spawnSync('fusermount', ['-uz', mp], { timeout: 30_000 });
    void root;
  }
}

async function main(): Promise<void> {
  mkdirSync(DIR, { recursive: true });
  const t0 = Date.now();
  const root = makeTree();
  log(`tree of ${FILES} files ready (${Math.round((Date.now() - t0) / 1000)} s): ${root}`);
  find(root); // warm the dentry/inode caches for both
  const home = join(DIR, 'home');
  rmSync(home, { recursive: true, force: true });
  vdfs(home, 'init');
  vdfs(home, 'location', 'add', 'bench', root);

  const findFirst = find(root);
  log('first scan…');
  const first = vdfs(home, 'scan');
  log(`first scan ${first.seconds.toFixed(1)} s, max RSS ${first.maxRssMB?.toFixed(0)} MB`);
  const db = join(home, 'index.db');
  spawnSync('sqlite3', [db, 'PRAGMA wal_checkpoint(TRUNCATE);']);
  const indexBytes = statSync(db).size + (existsSync(`${db}-wal`) ? statSync(`${db}-wal`).size : 0);

  const rescans: number[] = [],
    rescanRss: number[] = [],
    finds: number[] = [],
    status: number[] = [],
    statusRss: number[] = [],
    ls: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    finds.push(find(root).seconds);
    const r = vdfs(home, 'scan');
    rescans.push(r.seconds);
    if (r.maxRssMB !== null) rescanRss.push(r.maxRssMB);
    const s = vdfs(home, 'status');
    status.push(s.seconds);
    if (s.maxRssMB !== null) statusRss.push(s.maxRssMB);
    const l = vdfs(home, 'ls', '/bench/wide');
    if (l.stdout.split('\n').filter(Boolean).length < WIDE) throw new Error('vdfs ls /bench/wide listed too few entries');
    ls.push(l.seconds);
  }
  const dm = MOUNT ? await daemonRss(home, root) : undefined;
  if (REPLICATE) log('replication…');
  const rep = REPLICATE ? await measureReplication(DIR, Math.round(FILES / 1000)) : undefined;
  const entries = FILES + Math.ceil((FILES - WIDE) / 1000) + 2;
  const m = (xs: number[]) => {
    const v = median(xs);
    return v === null ? null : round(v);
  };
  const r = {
    files: FILES,
    firstScanS: round(first.seconds),
    findS: m([findFirst.seconds, ...finds]),
    firstScanVsFind: round(first.seconds / (median([findFirst.seconds, ...finds]) ?? 1), 2),
    firstScanMaxRssMB: first.maxRssMB === null ? null : round(first.maxRssMB),
    rescanS: m(rescans),
    rescanVsFind: round((median(rescans) ?? 0) / (median(finds) ?? 1), 2),
    rescanMaxRssMB: m(rescanRss),
    indexBytes,
    indexBytesPerEntry: Math.round(indexBytes / entries),
    statusS: m(status),
    statusMaxRssMB: m(statusRss),
    lsWideS: m(ls),
    daemonIdleRssMB: dm?.idleMB === undefined || dm.idleMB === null ? null : round(dm.idleMB),
    daemonAfterFindRssMB: dm?.afterFindMB === undefined || dm.afterFindMB === null ? null : round(dm.afterFindMB),
    findThroughMountS: dm ? round(dm.findSeconds) : null,
    replicateEntries: rep?.entries ?? null,
    replicateS: rep ? round(rep.seconds) : null,
    replicateReceiverCpuS: rep ? round(rep.receiverCpuS) : null,
    replicateReceiverMaxRssMB: rep ? round(rep.receiverMaxRssMB) : null,
    replicateOwnerCpuS: rep ? round(rep.ownerCpuS) : null,
    loadAvg: readFileSync('/proc/loadavg', 'utf8').split(' ')[0],
    runs: RUNS,
    date: new Date().toISOString(),
    node: process.version,
  };
  const targets: Record<string, string> = {
    firstScanVsFind: '<= 4',
    rescanVsFind: '<= 2',
    firstScanMaxRssMB: '<= 200',
    daemonIdleRssMB: '<= 150',
    daemonAfterFindRssMB: '<= 250',
    statusS: '<= 0.3',
    lsWideS: '<= 0.3',
    indexBytesPerEntry: '<= 350',
    replicateS: '<= 30',
  };
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    return;
  }
  const rows = Object.entries(r).map(([k, v]) => `${k.padEnd(24)} ${String(v).padStart(14)}  ${targets[k] ? `(target ${targets[k]} at 1M)` : ''}`);
  process.stdout.write(`${rows.join('\n')}\n\n${JSON.stringify(r)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`scale bench failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
