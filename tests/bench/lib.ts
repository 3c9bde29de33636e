// Shared helpers for the benchmark: timing, shell with hard timeouts, cold caches, medians.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export type Better = 'higher' | 'lower';

export interface Baseline { name: string; value: number | null; ratio: number | null; note?: string }
export interface Result {
  name: string;
  unit: string;
  better: Better;
  vdfs: number | null;
  baselines: Baseline[];
  note?: string;
  /** Raw samples per target, for the curious (kept out of the table). */
  samples?: Record<string, number[]>;
}

export interface BenchOptions { quick: boolean; json: boolean; reps: number; only?: string[]; log: (msg: string) => void }

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

export interface ShResult { code: number | null; stdout: string; stderr: string; seconds: number }

/** Runs a command (through bash when given one string) with a hard timeout; measures wall time. */
export function sh(cmd: string, opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): ShResult {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', cmd], { timeout: opts.timeoutMs ?? 300_000, encoding: 'utf8', maxBuffer: 1 << 28, input: opts.input, env: opts.env ?? process.env });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), seconds };
}

/** Like sh() but throws on a non-zero exit or a timeout. */
export function shOk(cmd: string, opts: { timeoutMs?: number; input?: string } = {}): ShResult {
  const r = sh(cmd, opts);
  if (r.code !== 0) throw new Error(`command failed (exit ${r.code}): ${cmd}\n${r.stderr.slice(-2000)}`);
  return r;
}

export function have(bin: string): boolean {
  return sh(`command -v ${bin}`).code === 0;
}

let dropWarned = false;
/** Drops the kernel page, dentry and inode caches (needs root). */
export function dropCaches(): boolean {
  try {
    sh('sync', { timeoutMs: 60_000 });
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    if (!dropWarned) { dropWarned = true; process.stderr.write('bench: cannot drop the page cache (not root?): "cold" figures are warm\n'); }
    return false;
  }
}

/** Peak resident set (VmHWM) of a process, in MB; null when it is gone. */
export function peakRssMB(pid: number | undefined): number | null {
  if (!pid) return null;
  const r = sh(`grep VmHWM /proc/${pid}/status`);
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(r.stdout);
  return m ? Number(m[1]) / 1024 : null;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One target of a measurement: vdfs or a baseline. `run` returns the measured value (or null: not available). */
export interface Target { name: string; run: (rep: number) => Promise<number | null> | number | null; note?: string }

/**
 * Runs every target once per repetition, interleaved (A B C A B C ...), and reduces each
 * target to its median. The first target must be vdfs.
 */
export async function measure(o: BenchOptions, spec: { name: string; unit: string; better: Better; note?: string }, targets: Target[], reps = o.reps): Promise<Result> {
  const samples: Record<string, number[]> = {};
  const notes: Record<string, string> = {};
  for (const t of targets) { samples[t.name] = []; if (t.note) notes[t.name] = t.note; }
  for (let rep = 0; rep < reps; rep++) {
    for (const t of targets) {
      try {
        const v = await t.run(rep);
        if (v !== null && Number.isFinite(v)) samples[t.name].push(v);
      } catch (err) {
        notes[t.name] = `failed: ${(err as Error).message.split('\n')[0].slice(0, 200)}`;
        o.log(`  ${spec.name} ${t.name} rep ${rep + 1}: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
      }
    }
  }
  const [v, ...bases] = targets;
  const vdfs = median(samples[v.name]);
  const res: Result = {
    name: spec.name,
    unit: spec.unit,
    better: spec.better,
    vdfs: vdfs === null ? null : round(vdfs),
    baselines: bases.map((b) => {
      const value = median(samples[b.name]);
      const out: Baseline = { name: b.name, value: value === null ? null : round(value), ratio: ratio(vdfs, value, spec.better) };
      if (notes[b.name]) out.note = notes[b.name];
      return out;
    }),
    samples,
  };
  const note = [spec.note, notes[v.name]].filter(Boolean).join('; ');
  if (note) res.note = note;
  o.log(`  ${spec.name}: vdfs ${res.vdfs} ${spec.unit}; ${res.baselines.map((b) => `${b.name} ${b.value} (x${b.ratio})`).join(', ')}`);
  return res;
}

/** A result that cannot be measured yet: every value null, with a note saying why. */
export function unavailable(name: string, unit: string, better: Better, note: string, baselines: string[]): Result {
  return { name, unit, better, vdfs: null, baselines: baselines.map((b) => ({ name: b, value: null, ratio: null, note })), note };
}

/** MB/s (10^6 bytes per second) from bytes and seconds. */
export const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
