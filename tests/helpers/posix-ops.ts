import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';

/** A second, unprivileged user for the tests that compare permission checks (nobody/nogroup). */
export const OTHER_USER = { uid: 65534, gid: 65534 };

/** One entry of a snapshot: the whole lstat, the content hash of files, the target of symlinks. */
export interface SnapEntry {
  type: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as decimal strings (beyond 2^53). */
  atime: string;
  mtime: string;
  ctime: string;
  ino: number;
  size?: number;
  sha?: string;
  target?: string;
  /** Device number of character and block devices. */
  rdev?: number;
}

/**
 * A python process applying filesystem operations under `root` (tests/helpers/posix-ops.py),
 * as root or, with `as`, as that user through setpriv: the same syscalls as the tools use
 * (utimensat flags, renameat2, link, mkfifo, mknod, fallocate, copy_file_range, lseek).
 */
export class PosixOps {
  private readonly proc: ChildProcess;
  private readonly pending: ((line: string) => void)[] = [];

  constructor(root: string, as?: { uid: number; gid: number }) {
    // The source as an argument: the other user may not be able to read the test tree.
    const script = readFileSync(join(__dirname, 'posix-ops.py'), 'utf8');
    // The system python: a per-user shim (pyenv) on PATH may be unreadable to the other user.
    const py = [existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', '-c', script, root];
    const cmd = as ? ['setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', ...py] : py;
    this.proc = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.proc.stdout! }).on('line', (l) => this.pending.shift()?.(l));
    this.proc.stdin!.on('error', () => undefined); // an exited helper fails the pending call below
    this.proc.on('exit', (code) => {
      for (const p of this.pending.splice(0)) p(JSON.stringify({ r: `helper exited (${code})` }));
    });
  }

  /** Runs one operation; the result ("ok", a value, or an errno name). Hard timeout: a hung mount fails. */
  run(op: Record<string, unknown>, timeoutMs = 20_000): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout: ${JSON.stringify(op)}`)), timeoutMs);
      this.pending.push((line) => {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { r: unknown }).r);
      });
      this.proc.stdin!.write(JSON.stringify(op) + '\n');
    });
  }

  snap(p: string): Promise<Record<string, SnapEntry>> {
    return this.run({ op: 'snap', p }) as Promise<Record<string, SnapEntry>>;
  }

  close(): void {
    this.proc.stdin!.end();
  }
}

const FAR = { before: BigInt(1_700_000_000) * 1_000_000_000n, after: BigInt(1_990_000_000) * 1_000_000_000n };
const explicit = (v: string) => BigInt(v) < FAR.before || BigInt(v) > FAR.after;

/**
 * Times: a time far from now on the real side was set explicitly, and the mount must show
 * exactly it. Otherwise times are "now" at slightly different moments on the two sides, so
 * what is compared is whether they changed in a step: a time the real filesystem left alone
 * must not move on the mount either (a re-hash or a refresh touching times shows up here).
 */
function compareTimes(path: string, got: SnapEntry, want: SnapEntry, prevGot?: SnapEntry, prevWant?: SnapEntry): string | undefined {
  for (const k of ['atime', 'mtime'] as const) {
    if (explicit(want[k]) && got[k] !== want[k]) return `${path} ${k}: mount ${got[k]}, real ${want[k]} (set explicitly)`;
  }
  if (!prevGot || !prevWant || prevGot.type !== got.type || prevWant.ino !== want.ino) return undefined;
  for (const k of ['mtime', 'ctime'] as const) {
    if (prevWant[k] === want[k] && prevGot[k] !== got[k]) return `${path} ${k} changed on the mount (${prevGot[k]} -> ${got[k]}) but not on the real filesystem`;
  }
  return undefined;
}

export function compareSnaps(
  got: Record<string, SnapEntry>,
  want: Record<string, SnapEntry>,
  prevGot: Record<string, SnapEntry>,
  prevWant: Record<string, SnapEntry>,
): string | undefined {
  const names = Object.keys(want).sort();
  if (JSON.stringify(Object.keys(got).sort()) !== JSON.stringify(names)) return `names: mount ${Object.keys(got).sort()}, real ${names}`;
  const groups = (s: Record<string, SnapEntry>) => JSON.stringify(names.map((p) => names.filter((q) => s[q].ino === s[p].ino)));
  if (groups(got) !== groups(want)) return `hard-link groups differ: mount ${groups(got)}, real ${groups(want)}`;
  for (const p of names) {
    const g = got[p];
    const w = want[p];
    for (const k of ['type', 'mode', 'nlink', 'uid', 'gid', 'size', 'sha', 'target', 'rdev'] as const) {
      if (g[k] !== w[k]) return `${p} ${k}: mount ${JSON.stringify(g[k])}, real ${JSON.stringify(w[k])}`;
    }
    const times = compareTimes(p, g, w, prevGot[p], prevWant[p]);
    if (times) return times;
  }
  return undefined;
}
