// Shared helpers for the benchmark: timing, shell with hard timeouts, cold caches, medians, tools.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Better = 'higher' | 'lower';
/** "cold": the kernel's page, dentry and inode caches were dropped before every timed sample. */
export type CacheState = 'cold' | 'warm';

export interface Baseline {
  name: string;
  value: number | null;
  ratio: number | null;
  samples: number[];
  note?: string;
}
/**
 * One figure, in the published JSON shape. `samples` are vdfs's raw samples, each baseline
 * carries its own. `cacheDropped` is recorded on every cold figure: false means the drop
 * failed and every value of the figure is withheld (null).
 */
export interface Result {
  name: string;
  unit: string;
  better: Better;
  cache: CacheState;
  /** Writes only: when a sample's clock stops (e.g. "fsync'd on the server", "in its final place"). */
  durability?: string;
  cacheDropped?: boolean;
  vdfs: number | null;
  samples: number[];
  baselines: Baseline[];
  note?: string;
}

export type SizeName = 'tiny' | 'quick' | 'full';
export interface BenchOptions {
  size: SizeName;
  quick: boolean;
  json: boolean;
  reps: number;
  only?: string[];
  log: (msg: string) => void;
}

export const MiB = 1 << 20;

export function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** ratio > 1 means vdfs is better. */
export function ratio(vdfs: number | null, base: number | null, better: Better): number | null {
  if (vdfs === null || base === null || vdfs <= 0 || base <= 0) return null;
  return round(better === 'higher' ? vdfs / base : base / vdfs, 2);
}

export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const mag = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : digits;
  const f = 10 ** mag;
  return Math.round(x * f) / f;
}

export interface ShResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command (through bash when given one string) with a hard timeout; measures wall time. */
export function sh(cmd: string, opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): ShResult {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', cmd], {
    timeout: opts.timeoutMs ?? 300_000,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    input: opts.input,
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), seconds };
}

/** Like sh() but throws on a non-zero exit or a timeout. */
export function shOk(cmd: string, opts: { timeoutMs?: number; input?: string; cwd?: string } = {}): ShResult {
  const r = sh(cmd, opts);
  if (r.code !== 0) throw new Error(`command failed (exit ${r.code}): ${cmd}\n${r.stderr.slice(-2000)}`);
  return r;
}

export function have(bin: string): boolean {
  return sh(`command -v ${bin}`).code === 0;
}

/** Every tool the bench runs, with the Debian package that has it (`.ci/setup` installs them). */
export const TOOLS: Record<string, string> = {
  curl: 'curl',
  fio: 'fio',
  dd: 'coreutils',
  b3sum: 'b3sum',
  git: 'git',
  tar: 'tar',
  rsync: 'rsync',
  find: 'findutils',
  fusermount: 'fuse',
};

/** Throws one clear error naming every missing tool and how to get it. */
export function requireTools(tools: Record<string, string>): void {
  const missing = Object.entries(tools).filter(([bin]) => !have(bin));
  if (missing.length === 0) return;
  const list = missing.map(([bin, pkg]) => `${bin} (Debian package ${pkg})`).join(', ');
  throw new Error(`missing tools: ${list}. Install them (bash .ci/setup does), or leave the baseline out with --skip NAME where one is optional (rclone, apache)`);
}

/** Every attempt to drop the caches, so that measure() can tell whether a cold sample was cold. */
const drops = { ok: 0, failed: 0, why: '' };

/** Drops the kernel page, dentry and inode caches (needs root). Returns false when it could not. */
export function dropCaches(): boolean {
  try {
    sh('sync', { timeoutMs: 60_000 });
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    drops.ok++;
    return true;
  } catch (err) {
    drops.failed++;
    drops.why = (err as Error).message.split('\n')[0];
    return false;
  }
}

/** Whether this process can drop the caches at all (checked once, at start). */
export function canDropCaches(): { ok: boolean; why: string } {
  const ok = dropCaches();
  return { ok, why: ok ? '' : drops.why };
}

/** Peak resident set (VmHWM) of a process, in MB; null when it is gone. */
export function peakRssMB(pid: number | undefined): number | null {
  if (!pid) return null;
  const r = sh(`grep VmHWM /proc/${pid}/status`);
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(r.stdout);
  return m ? Number(m[1]) / 1024 : null;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Writes and removes a scratch file of `mib` MiB in `dir` (not timed), so the page-cache
 * memory the next write of that size takes is memory the VM already has. On this VM free pages
 * are reported back to the host a few seconds after they are freed, and the first write to take
 * them faults each back in: a 512 MiB dd conv=fsync ran at 240-270 MB/s (2 s of system time in
 * copy_folio_from_iter_atomic) when it came first after a pause, and at 900-1,000 MB/s right
 * after another write, through the mount or on the disk alike. Every target of a write figure
 * gets the same warm-up right before its timed run, so none pays for the order it runs in.
 * (A tmpfs file does not do it: ext4's page cache takes large folios, tmpfs single pages.)
 */
export function warmFreePages(dir: string, mib: number): void {
  const f = join(dir, '.bench-warm');
  shOk(`dd if=/dev/zero of=${f} bs=1M count=${mib} status=none; rm -f ${f}`, { timeoutMs: 300_000 });
}

/** CPU ticks (utime+stime, all threads) of a process; 0 when it is gone. */
function cpuTicks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(v[11]) + Number(v[12]);
  } catch {
    return 0;
  }
}

/**
 * Waits until the servers are idle: dirty pages written (`sync`), then no server process
 * using more than 4 % of a CPU over half a second (or `maxMs`). A target's work that goes on
 * after its clock stopped (vdfs hashing and indexing the files it was given, rclone uploading
 * its cache) must not be charged to the next target. Returns the milliseconds waited.
 */
export async function quiesce(pids: (number | undefined)[], maxMs = 120_000): Promise<number> {
  const t0 = Date.now();
  sh('sync', { timeoutMs: maxMs });
  const live = pids.filter((p): p is number => !!p);
  while (Date.now() - t0 < maxMs) {
    const before = live.map(cpuTicks);
    await sleep(500);
    if (live.every((p, i) => cpuTicks(p) - before[i] <= 2)) break;
  }
  return Date.now() - t0;
}

/** Polls `ok` every 50 ms until it holds; throws `what` after `ms`. Used to wait for bytes to land. */
export async function until(ok: () => boolean, ms: number, what: () => string): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await sleep(50);
  }
}

/** One target of a measurement: vdfs or a baseline. `run` returns the measured value (or null: not available). */
export interface Target {
  name: string;
  run: (rep: number) => Promise<number | null> | number | null;
  note?: string;
}

export interface Spec {
  name: string;
  unit: string;
  better: Better;
  cache: CacheState;
  durability?: string;
  note?: string;
}

/** Every target failure of the run, so that the runner can fail at the end (never a silent gap). */
export const failures: string[] = [];

/**
 * Runs every target once per repetition, interleaved (A B C A B C ...), and reduces each
 * target to its median. The first target must be vdfs. On a cold figure every target must
 * drop the caches (dropCaches()) during each of its samples; when one could not, the whole
 * figure is withheld: values null, cacheDropped false, the samples kept for the curious.
 */
export async function measure(o: BenchOptions, spec: Spec, targets: Target[], reps = o.reps): Promise<Result> {
  const samples: Record<string, number[]> = {};
  const notes: Record<string, string> = {};
  let cold = true;
  for (const t of targets) {
    samples[t.name] = [];
    if (t.note) notes[t.name] = t.note;
  }
  for (let rep = 0; rep < reps; rep++) {
    for (const t of targets) {
      const before = { ...drops };
      try {
        const v = await t.run(rep);
        if (v !== null && Number.isFinite(v)) samples[t.name].push(v);
      } catch (err) {
        const msg = (err as Error).message.split('\n')[0].slice(0, 200);
        notes[t.name] = `failed: ${msg}`;
        failures.push(`${spec.name} ${t.name}: ${msg}`);
        o.log(`  ${spec.name} ${t.name} rep ${rep + 1}: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
      }
      if (spec.cache === 'cold' && (drops.failed > before.failed || drops.ok === before.ok)) cold = false;
    }
  }
  return summarize(
    o,
    spec,
    targets.map((t) => t.name),
    samples,
    notes,
    cold,
  );
}

/**
 * Reduces raw samples (target name -> samples, vdfs first in `order`) to a Result. Also used
 * for a second figure read off the same runs (e.g. "accepted" beside "in its final place").
 */
export function summarize(o: BenchOptions, spec: Spec, order: string[], samples: Record<string, number[]>, notes: Record<string, string> = {}, cold = true): Result {
  const withheld = spec.cache === 'cold' && !cold;
  const med = (name: string) => (withheld ? null : median(samples[name] ?? []));
  const [v, ...bases] = order;
  // Ratios from the published (rounded) medians, so that a reader can recompute them.
  const rv = med(v);
  const vdfs = rv === null ? null : round(rv);
  const res: Result = {
    name: spec.name,
    unit: spec.unit,
    better: spec.better,
    cache: spec.cache,
    ...(spec.durability ? { durability: spec.durability } : {}),
    ...(spec.cache === 'cold' ? { cacheDropped: cold } : {}),
    vdfs,
    samples: samples[v] ?? [],
    baselines: bases.map((b) => {
      const m = med(b);
      const value = m === null ? null : round(m);
      const out: Baseline = { name: b, value, ratio: ratio(vdfs, value, spec.better), samples: samples[b] ?? [] };
      if (notes[b]) out.note = notes[b];
      return out;
    }),
  };
  const note = [
    withheld ? `NOT COLD, figure withheld: the kernel caches could not be dropped (${drops.why || 'a target did not drop them'}); run as root` : '',
    spec.note,
    notes[v],
  ]
    .filter(Boolean)
    .join('; ');
  if (note) res.note = note;
  o.log(`  ${spec.name}: vdfs ${res.vdfs} ${spec.unit}; ${res.baselines.map((b) => `${b.name} ${b.value} (x${b.ratio})`).join(', ')}${withheld ? ' [NOT COLD: withheld]' : ''}`);
  return res;
}

/** MB/s (10^6 bytes per second) from bytes and seconds. */
export const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;

/** dd of a whole file to /dev/null; checks the byte count, returns MB/s. */
export function ddRead(file: string, bytes: number): number {
  const r = shOk(`dd if=${file} of=/dev/null bs=1M 2>&1`, { timeoutMs: 600_000 });
  const got = /^(\d+) bytes/m.exec(r.stdout);
  if (!got || Number(got[1]) !== bytes) throw new Error(`dd read ${got?.[1]} bytes of ${bytes}: ${r.stdout.slice(-300)}`);
  return mbps(bytes, r.seconds);
}

/** One 4 KiB pread at `offset` of a file (on a mount: this process is not the daemon), in ms; the open is not timed. */
export function preadMs(file: string, offset: number): number {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4096);
    const t0 = process.hrtime.bigint();
    readSync(fd, buf, 0, 4096, offset);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  } finally {
    closeSync(fd);
  }
}

/** 64 offsets in distinct 1 MiB blocks of a `bytes`-long file (+12345), so that every cold-read sample misses the block cache. */
export function coldOffsets(bytes: number): number[] {
  return Array.from({ length: 64 }, (_, i) => ((i * 7919) % Math.floor(bytes / MiB)) * MiB + 12345);
}

/** Drops one file's pages from the kernel page cache (POSIX_FADV_DONTNEED through dd), nothing else. */
export function dropFilePages(file: string): void {
  shOk(`dd if=${file} iflag=nocache count=0 status=none`);
}

// Maps each file and reads one byte of every page, then waits to be killed.
const HOLD_PY = `
import mmap, os, sys
maps = []
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY)
    m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    maps.append(m)
    sum(m[o] for o in range(0, len(m), 4096))
print('held', flush=True)
sys.stdin.read()
`;

/**
 * Runs `fn` while a child process keeps `files` mapped (every page touched first), so that they
 * stay in the page cache. This machine runs DAMON proactive reclaim (kdamond: `pageout` of
 * unmapped file pages idle for 60 s, up to 128 MiB/s), which pages out a file read once as fast
 * as a random-read run goes over it: of a 1 GiB backing file read whole just before, 96 MiB were
 * left after 10 s of fio (56k disk reads), so "served from a warm copy" measured the disk.
 * Mapped file pages are not taken. Throws when the files cannot be mapped.
 */
export async function whileMapped<T>(files: string[], fn: () => T | Promise<T>): Promise<T> {
  const child = spawn('python3', ['-c', HOLD_PY, ...files], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await until(
      () => out.includes('held') || child.exitCode !== null,
      300_000,
      () => `mapping ${files.join(' ')}`,
    );
    if (!out.includes('held')) throw new Error(`could not map ${files.join(' ')}: ${out.slice(-300)}`);
    return await fn();
  } finally {
    child.kill();
  }
}

/** IOPS of fio 4 KiB random reads at queue depth 1 (psync) on `file` for `secs` seconds; `extra`: more fio options. */
export function fio(file: string, secs: number, extra: string): number {
  const res = sh(`fio --name=rr --filename=${file} --readonly --rw=randread --bs=4k --iodepth=1 --ioengine=psync --runtime=${secs} --time_based --output-format=json ${extra}`, {
    timeoutMs: (secs + 120) * 1000,
  });
  if (res.code !== 0) throw new Error(`fio: ${res.stderr.slice(-300)}`);
  return (JSON.parse(res.stdout.slice(res.stdout.indexOf('{'))) as { jobs: Array<{ read: { iops: number } }> }).jobs[0].read.iops;
}
