import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir, VDFS_BIN, vdfsOk } from './cli';
import { registerWebdavLogin } from './webdav';

export interface RunningMount {
  proc: ChildProcess;
  mountpoint: string;
  output(): string;
  /** SIGTERM, wait for exit (hard timeout), then make sure nothing stays mounted. */
  stop(): Promise<number | null>;
  /** kill -9: leaves the mount dead, as a crash would. */
  kill9(): Promise<void>;
}

export function isMounted(mountpoint: string): boolean {
  const target = resolve(mountpoint);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === target);
}

function waitExit(proc: ChildProcess, ms: number): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((res) => {
    const timer = setTimeout(() => res(null), ms);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      res(code);
    });
  });
}

/**
 * The FUSE backend the tests mount with: native unless VDFS_TEST_FUSE_BACKEND=compat (or
 * =default: no --fuse-backend at all). Asked for explicitly, so a native addon that did not
 * build fails the tests instead of falling back.
 */
export function testBackend(): string[] {
  const b = process.env.VDFS_TEST_FUSE_BACKEND;
  if (b === 'default') return [];
  return ['--fuse-backend', b === 'compat' ? 'compat' : 'native'];
}

/**
 * Starts `vdfs mount` in a child process and waits (hard timeout) until it says it is
 * mounted. Register stop() in teardown: it always unmounts, even after a crash.
 */
export async function startMount(home: string, mountpoint: string, extra: string[] = [], timeoutMs = 20_000): Promise<RunningMount> {
  const backend = extra.includes('--fuse-backend') ? [] : testBackend();
  const proc = spawn(process.execPath, [VDFS_BIN, '--home', home, 'mount', mountpoint, ...backend, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const m: RunningMount = {
    proc,
    mountpoint,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      let code = await waitExit(proc, 15_000);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        code = await waitExit(proc, 5_000);
      }
      if (isMounted(mountpoint)) spawnSync('fusermount', ['-uz', mountpoint], { timeout: 10_000 });
      return code;
    },
    async kill9() {
      proc.kill('SIGKILL');
      await waitExit(proc, 5_000);
    },
  };
  const started = Date.now();
  while (!out.includes('vdfs mounted at')) {
    if (proc.exitCode !== null || Date.now() - started > timeoutMs) {
      await m.stop();
      throw new Error(`vdfs mount did not come up (exit ${proc.exitCode}):\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // A mount that also serves WebDAV: helper requests to it carry the home's login
  const dav = /vdfs serving WebDAV at https?:\/\/[^\s/]+:(\d+)\//.exec(out);
  if (dav) registerWebdavLogin(Number(dav[1]), home);
  return m;
}

/** Runs a command with a hard timeout (a hung mount must fail the test, not hang it). */
export function sh(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, encoding: 'utf8', maxBuffer: 1 << 28 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** A fresh home with one location `name` (backed by `src`) holding `files`, indexed, not mounted; `mnt` is where to mount it. */
export function indexedLocation(
  t: { teardown(fn: () => unknown): void },
  name: string,
  files: Record<string, string | Buffer>,
): { dir: string; home: string; src: string; mnt: string } {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  mkdirSync(src);
  for (const [rel, data] of Object.entries(files)) writeFileSync(join(src, rel), data);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', name, src]);
  vdfsOk(home, ['scan']);
  return { dir, home, src, mnt: join(dir, 'mnt') };
}

/** A fresh home with one empty location `name` (backed by `src`), mounted; `oracle` is a plain directory to compare with. */
export async function mountWithOracle(
  t: { teardown(fn: () => unknown): void },
  name: string,
  addArgs: string[] = [],
  mountArgs: string[] = [],
  config: Record<string, string> = {},
): Promise<{ dir: string; home: string; src: string; oracle: string; mnt: string; m: RunningMount }> {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const oracle = join(dir, 'oracle');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  mkdirSync(oracle);
  vdfsOk(home, ['init']);
  for (const [key, value] of Object.entries(config)) vdfsOk(home, ['config', 'set', key, value]);
  vdfsOk(home, ['location', 'add', name, src, ...addArgs]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt, mountArgs);
  t.teardown(() => m.stop());
  // The model tests compare every call with the disk from the first one: they start once the
  // daemon's start-up rescan is over. Calls racing that rescan are tests/fuse-rescan-race's
  // subject (and vfs-core's "a name a rescan indexed after a lookup missed it").
  for (const started = Date.now(); !/start-up rescan (done|failed)/.test(m.output());) {
    if (Date.now() - started > 60_000) throw new Error(`the daemon's start-up rescan did not end in 60 s:\n${m.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { dir, home, src, oracle, mnt, m };
}

/**
 * A python3 script: `python3 -c DIRECT_READER FILE OFFSETS [BACKING]` reads 4 KiB with O_DIRECT
 * at each of the comma-separated OFFSETS (what fio --direct=1 does) and writes the bytes to
 * stdout. With BACKING, that file is mapped and every page touched first: this machine's DAMON
 * reclaim pages out unmapped file pages within seconds (an 8 MiB file just written was gone
 * from the page cache 2 s later), mapped ones it leaves.
 */
export const DIRECT_READER = `
import mmap, os, sys
if len(sys.argv) > 3:
    held = mmap.mmap(os.open(sys.argv[3], os.O_RDONLY), 0, prot=mmap.PROT_READ)
    sum(held[o] for o in range(0, len(held), 4096))
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
out = bytearray()
for off in map(int, sys.argv[2].split(',')):
    n = os.preadv(fd, [buf], off)
    out += buf[:n]
os.close(fd)
sys.stdout.buffer.write(out)
`;
