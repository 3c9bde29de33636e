import { promises as fsp, fstatSync, type BigIntStats, type Stats } from 'node:fs';
import type { RawFile } from '../../core/raw-file';
import { FsError, toFsError } from '../../core/fs-error';
import { fdPath, pathHandle, withParent } from '../../core/beneath';
import type { EntryTarget, Target } from './targets';
import type { Caller } from './types';
import { S_ISGID } from './posix-calls';

// The local writer's steps on one inode of a local location, without following any symlink.

/** The daemon's own uid, read once (a getuid per created file was one of its ~34 system calls). */
const ME = process.getuid?.() ?? 0;

/**
 * A name just created through the mount gets what the disk would give the caller: their
 * uid, their gid (or the directory's when it is setgid), and exactly the permission bits
 * asked for (the caller's umask was applied by the kernel; the daemon's own must not be).
 * Ownership changes need root: a daemon run by a user creates files as that user.
 * `made`: the new file's own descriptor, with `madeStat` its fstat when the caller has it.
 * Resolves true when it changed the owner or mode. Throws FsError (EPERM, ENOENT, ... as the disk answers).
 */
export async function adoptCreated(t: Target, mode: number | undefined, owner: Caller | undefined, made?: RawFile, madeStat?: BigIntStats): Promise<boolean> {
  const root = t.location.uri;
  // A file just created: its own open descriptor names the inode (no second open by name).
  const fh =
    made ??
    (await pathHandle(root, t.rel).catch((err) => {
      throw toFsError(err, `create ${t.rel}`);
    }));
  let changed = false;
  try {
    let st = view(madeStat ?? (made ? fstatSync(made.fd) : await fh.stat()));
    if (owner && ME === 0 && (st.uid !== owner.uid || st.gid !== owner.gid)) {
      const { uid, gid } = await createdOwner(t, owner);
      if (st.link) await withParent(root, t.rel, (at) => fsp.lchown(at, uid, gid));
      else await fsp.chown(fdPath(fh.fd), uid, gid);
      changed = true;
      st = view(await fh.stat());
    }
    if (mode === undefined || st.link) return changed;
    const want = (mode & 0o7777) | (st.dir ? st.mode & S_ISGID : 0);
    if ((st.mode & 0o7777) !== want) {
      await fsp.chmod(fdPath(fh.fd), want);
      changed = true;
    }
    return changed;
  } catch (err) {
    throw toFsError(err, `create ${t.rel}`);
  } finally {
    if (!made) await fh.close().catch(() => undefined);
  }
}

/**
 * The owner the disk gives a name that `caller` creates at `t`: their uid, and their gid or
 * the folder's when the folder is setgid. Throws (the folder's stat, raw).
 */
export async function createdOwner(t: Target, caller: Caller): Promise<Caller> {
  const root = t.location.uri;
  const parentRel = t.rel.includes('/') ? t.rel.slice(0, t.rel.lastIndexOf('/')) : '';
  const parent = await (parentRel === '' ? fsp.stat(root) : pathHandle(root, parentRel).then((p) => p.stat().finally(() => p.close())));
  return { uid: caller.uid, gid: parent.mode & S_ISGID ? parent.gid : caller.gid };
}

/** What adoptCreated reads of a stat, from either kind. */
function view(st: Stats | BigIntStats): { uid: number; gid: number; mode: number; link: boolean; dir: boolean } {
  return { uid: Number(st.uid), gid: Number(st.gid), mode: Number(st.mode), link: st.isSymbolicLink(), dir: st.isDirectory() };
}

/**
 * Runs a by-path call that follows symlinks (chmod, utimes) on the inode at `t.rel` itself:
 * an O_PATH handle opened without following anything, then the call on /proc/self/fd/N,
 * which the kernel resolves to that inode. A symlink there is refused (EPERM): Linux has
 * no modes on links, and following it is what the attack wants. Throws FsError (EPERM, or
 * what `fn` or the open answers).
 */
export async function onInode(t: EntryTarget, what: string, fn: (p: string) => Promise<void>): Promise<void> {
  const fh = await pathHandle(t.location.uri, t.rel).catch((err) => {
    throw toFsError(err, `${what} ${t.rel}`);
  });
  try {
    if ((await fh.stat()).isSymbolicLink()) throw new FsError('EPERM', `${what} ${t.rel}: it is a symlink`);
    await fn(fdPath(fh.fd)).catch((err) => {
      throw toFsError(err, `${what} ${t.rel}`);
    });
  } finally {
    await fh.close().catch(() => undefined);
  }
}
