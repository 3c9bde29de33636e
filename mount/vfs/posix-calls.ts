import { promises as fsp } from 'node:fs';
import { errnoName, loadNativeFuse } from '../../core/native-addon';
import { FsError, toFsError } from '../../core/fs-error';
import { useNativeDirOpener } from '../../core/beneath';
import { futimensFd, timespecOf, type TimeSet } from '../../core/fd-times';

function fromErrno(rc: number, context: string): FsError {
  const code = errnoName(rc);
  return toFsError(Object.assign(new Error(`${code}`), { code }), context);
}

/** Milliseconds since the epoch as an exact-as-possible TimeSet. */
export function msTime(ms: number): { sec: number; nsec: number } {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.min(999_999_999, Math.max(0, Math.round((ms - sec * 1000) * 1e6))) };
}

/**
 * utimensat(AT_SYMLINK_NOFOLLOW) on `at` (a `/proc/self/fd/N/name` path from withParent):
 * nanoseconds, 'now' and 'omit' exactly, through the native addon. Without the addon, Node's
 * lutimes (microseconds; 'omit' re-reads the current time first). Throws FsError.
 */
export async function setTimesAt(at: string, atime: TimeSet, mtime: TimeSet, context: string): Promise<void> {
  const addon = loadNativeFuse().addon as { utimens?: (p: string, a: number, an: number, m: number, mn: number) => number } | undefined;
  if (addon?.utimens) {
    const rc = addon.utimens(at, ...timespecOf(atime), ...timespecOf(mtime));
    if (rc < 0) throw fromErrno(rc, context);
    return;
  }
  const st = await fsp.lstat(at).catch((err) => {
    throw toFsError(err, context);
  });
  const sec = (t: TimeSet, cur: number) => (t === 'now' ? Date.now() / 1000 : t === 'omit' ? cur / 1000 : t.sec + t.nsec / 1e9);
  await fsp.lutimes(at, sec(atime, st.atimeMs), sec(mtime, st.mtimeMs)).catch((err) => {
    throw toFsError(err, context);
  });
}

/**
 * futimens(2) on an open descriptor: nanoseconds, 'now' and 'omit' exactly; false when the
 * addon is not built (the caller then sets times by path). Throws FsError.
 */
export function setTimesFd(fd: number, atime: TimeSet, mtime: TimeSet, context: string): boolean {
  const rc = futimensFd(fd, atime, mtime);
  if (rc === undefined) return false;
  if (rc < 0) throw fromErrno(rc, context);
  return true;
}

/** Major and minor of a device number as Linux encodes it (new_encode_dev; glibc's st_rdev agrees for every real device). */
export function devParts(rdev: number): [number, number] {
  return [(rdev >>> 8) & 0xfff, (rdev & 0xff) | ((rdev >>> 12) & 0xfff00)];
}

/**
 * mknod(2) at `at` (a `/proc/self/fd/N/name` path from withParent): a FIFO, socket or device
 * node, as `mode`'s type bits say. Node has no mknod, so it needs the native addon: without it
 * EPERM (as on a filesystem that cannot make special files). Throws FsError (EEXIST, EPERM, ...).
 */
export function mknodAt(at: string, mode: number, rdev: number, context: string): void {
  const addon = loadNativeFuse().addon as { mknod?: (p: string, mode: number, maj: number, min: number) => number } | undefined;
  if (!addon?.mknod) throw new FsError('EPERM', `${context}: special files need vdfs's native addon, which is not built (mount/fuse/native/build.sh)`);
  const rc = addon.mknod(at, mode >>> 0, ...devParts(rdev));
  if (rc < 0) throw fromErrno(rc, context);
}

/** fallocate(2) on a descriptor, any mode the disk supports; false when the addon is not built. Throws FsError. */
export function fallocateFd(fd: number, mode: number, offset: number, len: number, context: string): boolean {
  const addon = loadNativeFuse().addon as { fallocate?: (fd: number, m: number, o: number, l: number) => number } | undefined;
  if (!addon?.fallocate) return false;
  const rc = addon.fallocate(fd, mode, offset, len);
  if (rc < 0) throw fromErrno(rc, context);
  return true;
}

/**
 * renameat2(RENAME_EXCHANGE) of two `/proc/self/fd/N/name` paths (from withParent): swaps the
 * names atomically. Node has no renameat2, so without the addon EINVAL (as on a filesystem that
 * cannot exchange). Throws FsError (ENOENT, EINVAL, EXDEV, ...).
 */
export function renameExchangeAt(from: string, to: string, context: string): void {
  const addon = loadNativeFuse().addon as { renameExchange?: (a: string, b: string) => number } | undefined;
  if (!addon?.renameExchange) throw new FsError('EINVAL', `${context}: RENAME_EXCHANGE needs vdfs's native addon, which is not built (mount/fuse/native/build.sh)`);
  const rc = addon.renameExchange(from, to);
  if (rc < 0) throw fromErrno(rc, context);
}

/** Makes withParent open parents by one native openat2 when the addon has it (else nothing changes). */
export function installNativeDirOpener(): void {
  const addon = loadNativeFuse().addon as { openDirBeneath?: (root: string, rel: string) => number } | undefined;
  if (addon?.openDirBeneath) useNativeDirOpener(addon.openDirBeneath);
}

export const S_ISGID = 0o2000;
