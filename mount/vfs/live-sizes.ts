import { fstatSync, type BigIntStats } from 'node:fs';
import type { RawFile } from '../../core/raw-file';
import { toFsError } from '../../core/fs-error';
import { parentOf } from '../../core/paths';

/** What getattr shows of a file open for writing (see LiveSizes.get). */
export interface LiveAttr {
  size: number;
  mtimeMs: number;
  mtimeNs?: bigint;
  /** The descriptor's atime and ctime when its fstat gave these values (utimens may set the mtime anywhere). */
  atimeNs?: bigint;
  ctimeNs?: bigint;
  mode?: number;
}

interface Live {
  size: number;
  mtimeMs: number;
  atimeNs?: bigint;
  ctimeNs?: bigint;
  /** The exact mtime a utimens set while open (futimens by touch), until the next write. */
  mtimeNs?: bigint;
  /** Permission bits as the descriptor's last fstat read them (a fchmod, or a write that cleared setuid). */
  mode?: number;
  writers: number;
  /**
   * Descriptors of writers of a real file (a local location's): size, mtime and mode come from
   * their fstat, exact to the nanosecond, whoever wrote (the addon, the kernel in passthrough, JS).
   */
  fds?: Set<number>;
  /** The real file the last followed descriptor has open (device, inode). */
  identity?: FileIdentity;
  /**
   * size and mtime are the fstat its only writer took as it opened the file, and nothing could
   * write it since: the first get() answers without an fstat (the CREATE's reply).
   */
  fresh?: boolean;
}

/**
 * fstat of a descriptor of `l` open on the file its name holds (`identity`, when known); null
 * when every descriptor is of another file, undefined when none could be asked (closed meanwhile:
 * the last known values stand).
 */
function statOfNamed(l: Live): BigIntStats | null | undefined {
  let other = false;
  for (const fd of l.fds ?? []) {
    try {
      const st = fstatSync(fd, { bigint: true });
      if (!l.identity || (st.ino === l.identity.ino && st.dev === l.identity.dev)) return st;
      other = true;
    } catch {
      /* closed meanwhile */
    }
  }
  return other ? null : undefined;
}

/** Which file on a disk: device and inode, as lstat and fstat report them. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

/**
 * Size and mtime of files open for writing, by virtual path: getattr answers from here
 * while a writer is active (the index follows on flush/close). Shared by every writer so a
 * rename moves them in one place.
 */
export class LiveSizes {
  private readonly live = new Map<string, Live>();

  /** Files open for writing now. */
  get size(): number {
    return this.live.size;
  }

  /**
   * The live values of the file open for writing under `vpath`, from a writer's descriptor of the
   * file the name holds (the one followed last): a writer that kept a file open after its name
   * was unlinked or renamed over does not speak for the new file there. Undefined when only such
   * writers are left.
   */
  get(vpath: string): LiveAttr | undefined {
    const l = this.live.get(vpath);
    if (l?.fresh) l.fresh = false;
    else if (l?.fds?.size) {
      const st = statOfNamed(l);
      if (st === null) return undefined;
      if (st) {
        l.size = Number(st.size);
        l.mtimeNs = st.mtimeNs;
        l.mtimeMs = Number(st.mtimeNs / 1000n) / 1000;
        l.atimeNs = st.atimeNs;
        l.ctimeNs = st.ctimeNs;
        // The mode too: a write by a user without CAP_FSETID clears setuid/setgid in the addon
        // (FUSE_WRITE_KILL_SUIDGID) without JS knowing, and the index keeps the old mode until the close.
        l.mode = Number(st.mode & 0o7777n);
      }
    }
    return l;
  }

  /**
   * The live values (as get() gives them) of the real file `id` (device, inode) open for writing
   * under some name: another name of a hard-linked file shows what its writer wrote.
   */
  linked(id: FileIdentity): LiveAttr | undefined {
    for (const [vpath, l] of this.live) if (l.identity?.ino === id.ino && l.identity.dev === id.dev) return this.get(vpath);
    return undefined;
  }

  /** Some file directly in the directory `dir` is open for writing (its size and mtime are live). */
  writingIn(dir: string): boolean {
    for (const p of this.live.keys()) if (parentOf(p) === dir) return true;
    return false;
  }

  /** How many handles have `vpath` open for writing. */
  writers(vpath: string): number {
    return this.live.get(vpath)?.writers ?? 0;
  }

  /** Open for writing (any writer), without the fstat of get(). */
  has(vpath: string): boolean {
    return this.live.has(vpath);
  }

  /**
   * A writer of `vpath` writes the real file `fd` (`identity`: that file's device and inode): its
   * descriptor is asked for size and mtime from now on.
   */
  follow(vpath: string, fd: number, identity?: FileIdentity): void {
    const l = this.live.get(vpath);
    if (!l) return;
    (l.fds ??= new Set()).add(fd);
    if (identity) l.identity = identity;
  }

  /** The real file the last followed writer of `vpath` has open, if any. */
  identity(vpath: string): FileIdentity | undefined {
    return this.live.get(vpath)?.identity;
  }

  /**
   * `exact`: the real file's fstat when known (its mtime is shown instead of `mtimeMs`); the first
   * writer's values are then shown once without asking the descriptor again.
   */
  opened(vpath: string, size: number, mtimeMs: number, exact?: { mtimeNs: bigint; atimeNs: bigint; ctimeNs: bigint }): void {
    const l = this.live.get(vpath);
    const { mtimeNs, atimeNs, ctimeNs } = exact ?? {};
    if (!l) return void this.live.set(vpath, { size, mtimeMs, mtimeNs, atimeNs, ctimeNs, writers: 1, fresh: exact !== undefined });
    // Another writer: the descriptors already followed stay (a new record lost them, and once
    // this writer closed, the one still open showed its values from before, mtime rounded).
    Object.assign(l, { size, mtimeMs, mtimeNs, atimeNs, ctimeNs, writers: l.writers + 1, fresh: false });
  }

  wrote(vpath: string, offset: number, n: number, append: boolean): void {
    const l = this.live.get(vpath);
    if (!l) return;
    l.fresh = false;
    l.atimeNs = l.ctimeNs = undefined;
    l.size = append ? l.size + n : Math.max(l.size, offset + n);
    l.mtimeMs = Date.now();
    l.mtimeNs = undefined;
  }

  set(vpath: string, size: number, mtimeMs = Date.now(), mtimeNs?: bigint): void {
    const l = this.live.get(vpath);
    if (l) {
      l.fresh = false;
      l.atimeNs = l.ctimeNs = undefined;
      l.size = size;
      l.mtimeMs = mtimeMs;
      l.mtimeNs = mtimeNs;
    }
  }

  touched(vpath: string, mtimeMs: number, mtimeNs?: bigint): void {
    const l = this.live.get(vpath);
    if (l) {
      l.fresh = false;
      l.atimeNs = l.ctimeNs = undefined;
      l.mtimeMs = mtimeMs;
      l.mtimeNs = mtimeNs;
    }
  }

  /** Mode and exact mtime of an open file after a change through its descriptor (fstat after fchmod/futimens). */
  changedMeta(vpath: string, mtimeNs: bigint): void {
    const l = this.live.get(vpath);
    if (l) {
      // Not fresh: the next get() takes the mode (and all else) from the descriptor's fstat.
      l.fresh = false;
      l.atimeNs = l.ctimeNs = undefined;
      l.mtimeMs = Number(mtimeNs / 1000n) / 1000;
      l.mtimeNs = mtimeNs;
    }
  }

  closed(vpath: string, fd?: number): void {
    const l = this.live.get(vpath);
    if (fd !== undefined) l?.fds?.delete(fd);
    if (l && --l.writers <= 0) this.live.delete(vpath);
  }

  /** Names were renamed, all at once (see movedPath): entries at or below each `from` move to its `to`. */
  moved(moves: readonly Move[]): void {
    const next: [string, Live][] = [];
    for (const [p, l] of [...this.live]) {
      const np = movedPath(p, moves);
      if (np === undefined) continue;
      this.live.delete(p);
      next.push([np, l]);
    }
    for (const [np, l] of next) this.live.set(np, l);
  }
}

/** A rename of `from` to `to` (a whole subtree for a directory). */
export type Move = readonly [from: string, to: string];

/**
 * Where `p` is after `moves`, taken together (an exchange is two moves, each name to the other's
 * place; the names of one call are never inside each other), or undefined when none touches it.
 */
export function movedPath(p: string, moves: readonly Move[]): string | undefined {
  for (const [from, to] of moves) {
    if (p === from) return to;
    if (p.startsWith(`${from}/`)) return to + p.slice(from.length);
  }
  return undefined;
}

/** Writes all of `data` at `position` (null: at the end, for O_APPEND files). Throws FsError. */
export async function writeAll(fd: Pick<RawFile, 'write'>, data: Buffer, position: number | null, what: string): Promise<number> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fd.write(data, done, data.length - done, position === null ? null : position + done).catch((err) => {
      throw toFsError(err, what);
    });
    done += bytesWritten;
  }
  return done;
}
