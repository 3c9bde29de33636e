import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** The repository root: the nearest folder up with bin/vdfs (works from sources and from dist/). */
function repoRoot(): string {
  let d = __dirname;
  while (!existsSync(join(d, 'package.json')) || !existsSync(join(d, 'bin', 'vdfs'))) {
    const up = dirname(d);
    if (up === d) throw new Error('cannot find the repository root (bin/vdfs)');
    d = up;
  }
  return d;
}

export const ROOT = repoRoot();
export const VDFS_BIN = join(ROOT, 'bin', 'vdfs');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  json<T = unknown>(): T;
}

/** Runs the real `vdfs` CLI (the built dist/) in a child process with a hard timeout. */
export function vdfs(home: string, args: string[], opts: { timeoutMs?: number; input?: Buffer } = {}): RunResult {
  const r = spawnSync(process.execPath, [VDFS_BIN, '--home', home, ...args], {
    encoding: 'buffer',
    timeout: opts.timeoutMs ?? 120_000,
    input: opts.input,
    env: { ...process.env, VDFS_HOME: '' },
    maxBuffer: 1 << 30,
  });
  if (r.error) throw r.error;
  const stdout = r.stdout.toString('utf8');
  return {
    code: r.status ?? -1,
    stdout,
    stderr: r.stderr.toString('utf8'),
    json<T>() {
      try {
        return JSON.parse(stdout) as T;
      } catch {
        throw new Error(`vdfs ${args.join(' ')} did not print JSON (exit ${r.status}):\n${stdout}\n${r.stderr}`);
      }
    },
  };
}

/** Like vdfs() but throws unless the exit status is 0. */
export function vdfsOk(home: string, args: string[]): RunResult {
  const r = vdfs(home, args);
  if (r.code !== 0) throw new Error(`vdfs ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r;
}

/** A fresh temp directory, removed when the test ends. */
export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'vdfs-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // Retried: a file the code under test still finishes writing (a hash, a log line) makes one
  // pass fail with ENOTEMPTY.
  t.teardown(() => {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    } catch (err) {
      console.error(`tempDir teardown: removing ${dir} failed:`, err);
      throw err;
    }
  });
  return dir;
}

/** The BLAKE3 hash of a file according to Debian's b3sum (the oracle). */
export function b3sum(file: string): string {
  return execFileSync('b3sum', ['--no-names', file], { encoding: 'utf8' }).trim();
}

export function b3sumMany(files: string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (files.length === 0) return out;
  const text = execFileSync('b3sum', ['--', ...files], { encoding: 'utf8', maxBuffer: 1 << 28 });
  for (const line of text.split('\n')) {
    if (!line) continue;
    out.set(line.slice(66), line.slice(0, 64));
  }
  return out;
}

/** Polls `cond` every 20 ms until it holds or `ms` pass; resolves with its last answer. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

/** Runs the CLI without blocking this process (a server the command talks to may run here); rejects on a non-zero exit. */
export async function vdfsAsync(home: string, args: string[]): Promise<void> {
  const p = spawn(process.execPath, [VDFS_BIN, '--home', home, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => p.once('exit', r));
  if (code !== 0) throw new Error(`vdfs ${args.join(' ')} exited ${code}: ${err}`);
}

/** A `kB` field of /proc/PID/status (VmRSS, VmHWM, RssAnon…) in KiB; throws when the process or the field is gone. */
export function procStatusKiB(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}
