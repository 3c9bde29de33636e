// The vdfs CLI and daemon for the bench. tests/helpers resolve bin/vdfs relative to their
// own source folder, which is wrong once compiled into dist/, so the bench finds the
// repository root itself (the folder holding package.json) and otherwise mirrors them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isMounted } from './env-mounts';

function repoRoot(): string {
  let d = __dirname;
  while (!existsSync(join(d, 'package.json')) || !existsSync(join(d, 'bin', 'vdfs'))) {
    const up = dirname(d);
    if (up === d) throw new Error('bench: cannot find the repository root (bin/vdfs)');
    d = up;
  }
  return d;
}

export const VDFS_BIN = join(repoRoot(), 'bin', 'vdfs');

export interface CliResult { code: number; stdout: string; stderr: string; json<T>(): T }

export function vdfs(home: string, args: string[], opts: { timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [VDFS_BIN, '--home', home, ...args], { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, env: { ...process.env, VDFS_HOME: '' }, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  const stdout = r.stdout ?? '';
  return { code: r.status ?? -1, stdout, stderr: r.stderr ?? '', json: <T>() => JSON.parse(stdout) as T };
}

export interface RunningMount { proc: ChildProcess; output(): string; stop(): Promise<void> }

function waitExit(proc: ChildProcess, ms: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((res) => { const t = setTimeout(res, ms); proc.once('exit', () => { clearTimeout(t); res(); }); });
}

/** `vdfs mount` in a child process; resolves once it prints that it is mounted (hard timeout). */
export async function startMount(home: string, mountpoint: string, extra: string[], timeoutMs: number): Promise<RunningMount> {
  const proc = spawn(process.execPath, [VDFS_BIN, '--home', home, 'mount', mountpoint, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VDFS_HOME: '' } });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); if (out.length > 1 << 20) out = out.slice(-(1 << 19)); });
  const m: RunningMount = {
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await waitExit(proc, 15_000);
      if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGKILL'); await waitExit(proc, 5_000); }
      if (isMounted(mountpoint)) spawnSync('fusermount', ['-uz', mountpoint], { timeout: 10_000 });
    },
  };
  const t0 = Date.now();
  while (!out.includes('vdfs mounted at')) {
    if (proc.exitCode !== null || Date.now() - t0 > timeoutMs) { await m.stop(); throw new Error(`vdfs mount did not come up (exit ${proc.exitCode}):\n${out.slice(-2000)}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return m;
}
