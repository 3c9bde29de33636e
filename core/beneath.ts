import { closeSync, constants as C, fstatSync, fsync, linkSync, mkdirSync, promises as fsp, renameSync, rmdirSync, symlinkSync, unlinkSync, type BigIntStats } from 'node:fs';
import { errnoName } from './native-addon';
import { FsError, toFsError } from './fs-error';
import { splitPath } from './paths';
import { onLocalDisk, RawFile } from './raw-file';

/**
 * Symlink-safe access to paths inside a local location (Linux).
 *
 * `join(root, rel)` follows a symlink in any directory on the way, so a directory swapped for
 * a link to /root/.ssh between the scan and a read or write takes the operation out of the
 * location (a time-of-check/time-of-use race no up-front check can close). Instead every
 * directory component is opened with O_DIRECTORY|O_NOFOLLOW relative to the directory fd of
 * its parent, addressed as `/proc/self/fd/N/name`: the kernel resolves the magic link
 * `/proc/self/fd/N` to the open directory itself (never by name again), and O_NOFOLLOW
 * refuses the one component looked up in it when it is a symlink. The operation then runs on
 * the final name inside that open parent, so nothing on the way can be swapped.
 *
 * Only the root itself is opened by name and followed: a location root may be a symlink
 * (~/Photos -> /mnt/disk/Photos). With the native addon, withParent opens the parent in one
 * openat2 call on the JS thread (a dentry-cache walk); otherwise every open runs on the libuv pool.
 */

/** O_PATH (Linux): an fd naming an inode without opening it for I/O; fchmod/futimes need the /proc path. */
export const O_PATH = 0o10000000;

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** `/proc/self/fd/N` or `/proc/self/fd/N/name`: an open fd as a path the kernel never re-resolves by name. */
export function fdPath(fh: fsp.FileHandle | number, name?: string): string {
  const fd = typeof fh === 'number' ? fh : fh.fd;
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** fsync of a raw descriptor (a directory from withParent), on the libuv pool. */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

function swapped(err: unknown, rel: string): FsError {
  const code = (err as NodeJS.ErrnoException).code;
  // ELOOP (a symlink where a directory was expected) is what the attack looks like: refuse it
  // as "not a directory" so every front end answers like for any other non-directory.
  if (code === 'ELOOP') return new FsError('ENOTDIR', `${rel} goes through a symlink; symlinks inside a location are never followed`, err);
  return toFsError(err, rel);
}

/**
 * Opens the directory `parts` (components, already checked) under `root`, without following
 * a symlink anywhere below the root. Throws ENOTDIR (a symlink or file on the way), ENOENT,
 * EACCES, EIO. The caller closes the handle.
 */
export async function openDirBeneath(root: string, parts: readonly string[], rel = parts.join('/')): Promise<fsp.FileHandle> {
  let dir = await fsp.open(root, C.O_RDONLY | C.O_DIRECTORY).catch((err) => {
    throw toFsError(err, `open location root ${root}`);
  });
  for (const name of parts) {
    let next: fsp.FileHandle;
    try {
      next = await fsp.open(fdPath(dir, name), DIR_FLAGS);
    } catch (err) {
      void dir.close().catch(() => undefined);
      throw swapped(err, rel);
    }
    // Not awaited: the close of a directory fd cannot fail in a way that matters here, and
    // waiting for it would add one thread-pool round trip per component.
    void dir.close().catch(() => undefined);
    dir = next;
  }
  return dir;
}

/**
 * A native one-call form of openDirBeneath (openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS,
 * synchronous): returns a raw fd or -errno. Installed by the VFS when its addon is built; the
 * per-component walk on the libuv pool above cost about ten thread-pool round trips per
 * written file and was most of the time of a `tar x` into the mount.
 */
export type NativeDirOpener = (root: string, rel: string) => number;
let nativeOpenDir: NativeDirOpener | undefined;

/** Uses `fn` for every withParent from now on (undefined: back to the libuv walk). */
export function useNativeDirOpener(fn: NativeDirOpener | undefined): void {
  nativeOpenDir = fn;
}

/** The parent directory of `rel` as a raw fd, by the native opener. Throws like openDirBeneath. */
function openParentFd(open: NativeDirOpener, root: string, parts: readonly string[], rel: string): number {
  const fd = open(root, parts.join('/'));
  if (fd >= 0) return fd;
  const code = errnoName(fd);
  const err = Object.assign(new Error(`${code}: open ${rel}`), { code, errno: fd });
  // The root itself is opened by name (and followed): its failure reads as the old walk's.
  throw parts.length === 0 ? toFsError(err, `open location root ${root}`) : swapped(err, rel);
}

/**
 * Runs `fn` with the open parent directory of `rel` (its fd) and the path of `rel`'s last
 * component inside it (`/proc/self/fd/N/name`). Namespace operations that act on the name
 * itself (mkdir, unlink, rmdir, rename, symlink, lstat, readlink, open with O_NOFOLLOW) are
 * then safe. `rel` must not be the root. Throws what openDirBeneath throws, then what `fn` throws.
 */
export async function withParent<T>(root: string, rel: string, fn: (at: string, dirFd: number, name: string) => Promise<T>): Promise<T> {
  const parts = splitPath(rel);
  if (parts.length === 0) throw new FsError('EINVAL', 'the root of a location has no parent inside it');
  const name = parts[parts.length - 1];
  if (nativeOpenDir) {
    const fd = openParentFd(nativeOpenDir, root, parts.slice(0, -1), rel);
    try {
      return await fn(fdPath(fd, name), fd, name);
    } finally {
      closeSync(fd);
    }
  }
  const dir = await openDirBeneath(root, parts.slice(0, -1), rel);
  try {
    return await fn(fdPath(dir, name), dir.fd, name);
  } finally {
    await dir.close().catch(() => undefined);
  }
}

/**
 * Opens `rel` under `root` with `flags` (O_NOFOLLOW is always added; O_CREAT creates it in
 * the safely opened parent). The root itself ('' ) opens as a directory. Throws ENOTDIR for a
 * symlink on the way, ELOOP when `rel` itself is a symlink, ENOENT, EACCES, EISDIR, EIO.
 */
export async function openBeneath(root: string, rel: string, flags: number, mode = 0o644): Promise<fsp.FileHandle> {
  if (splitPath(rel).length === 0) return openDirBeneath(root, []);
  return withParent(root, rel, (at) =>
    fsp.open(at, flags | C.O_NOFOLLOW, mode).catch((err) => {
      throw toFsError(err, `open ${rel}`);
    }),
  );
}

/**
 * openBeneath for a file's content, as a RawFile: opened and closed on the JS thread when the
 * location is on a local disk (onLocalDisk), else on the libuv pool. `rel` must not be the root.
 * With `folder`, on a local disk, `folder.stat` is set to the fstat of the folder it was opened
 * in, taken right after the open (a CREATE's folder, changed by it, without a probe by path).
 * Throws like openBeneath.
 */
export function openFileBeneath(root: string, rel: string, flags: number, mode = 0o644, folder?: { stat?: BigIntStats }): Promise<RawFile> {
  const sync = onLocalDisk(root);
  return withParent(root, rel, async (at, dirFd) => {
    const file = await RawFile.open(at, flags | C.O_NOFOLLOW, mode, sync).catch((err) => {
      throw toFsError(err, `open ${rel}`);
    });
    if (folder && sync)
      try {
        folder.stat = fstatSync(dirFd, { bigint: true });
      } catch {
        folder.stat = undefined; // probed by path instead
      }
    return file;
  });
}

/**
 * An O_PATH handle on `rel` itself (a symlink is not followed: the handle names the link).
 * For chmod and utimes, which have no "no-follow" form that works on Linux files: run them on
 * fdPath(handle.fd) after checking what it is. Opened, fstat'ed and closed on the JS thread on
 * a local disk, as openFileBeneath's (three pool round trips per chmod by name before: `rsync
 * -a` sets mode and times by name for every file). Throws like openBeneath.
 */
export function pathHandle(root: string, rel: string): Promise<RawFile | fsp.FileHandle> {
  return splitPath(rel).length === 0 ? openDirBeneath(root, []) : openFileBeneath(root, rel, O_PATH);
}

/** The name operations of the local writer, each on a path from withParent. Reject with the system error. */
export interface NameOps {
  mkdir(at: string, mode: number): Promise<void>;
  rmdir(at: string): Promise<void>;
  unlink(at: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  symlink(target: string, at: string): Promise<void>;
  link(existing: string, at: string): Promise<void>;
}

// `async`: a synchronous call's error becomes the promise's rejection, as fs/promises' would.
const JS_THREAD_OPS: NameOps = {
  mkdir: async (at, mode) => void mkdirSync(at, { mode }),
  rmdir: async (at) => rmdirSync(at),
  unlink: async (at) => unlinkSync(at),
  rename: async (from, to) => renameSync(from, to),
  symlink: async (target, at) => symlinkSync(target, at),
  link: async (existing, at) => linkSync(existing, at),
};
const POOL_OPS: NameOps = {
  mkdir: async (at, mode) => void (await fsp.mkdir(at, { mode })),
  rmdir: (at) => fsp.rmdir(at),
  unlink: (at) => fsp.unlink(at),
  rename: (from, to) => fsp.rename(from, to),
  symlink: (target, at) => fsp.symlink(target, at),
  link: (existing, at) => fsp.link(existing, at),
};

/**
 * The name operations for paths inside `root`: on the JS thread when it is on a local disk
 * (onLocalDisk), where each is answered in microseconds from the dentry and inode caches and a
 * thread-pool round trip cost more than the call (a RENAME per file of `rsync -a`, an UNLINK per
 * file of `rm -r`), as openFileBeneath's open and close are; elsewhere on the libuv pool.
 * Never throws.
 */
export function nameOps(root: string): NameOps {
  return onLocalDisk(root) ? JS_THREAD_OPS : POOL_OPS;
}
