import { constants } from 'node:os';
import type { FsErrorCode } from '../../core/fs-error';

const E = constants.errno;

/** FsError code -> Linux errno, one complete table (the compiler checks every code is here). */
export const ERRNO: Record<FsErrorCode, number> = {
  ENOENT: E.ENOENT,
  EEXIST: E.EEXIST,
  ENOTDIR: E.ENOTDIR,
  EISDIR: E.EISDIR,
  ENOTEMPTY: E.ENOTEMPTY,
  EROFS: E.EROFS,
  EACCES: E.EACCES,
  EPERM: E.EPERM,
  EIO: E.EIO,
  EHOSTDOWN: 112, // not in Node's table on every platform; Linux value
  ENOSPC: E.ENOSPC,
  EXDEV: E.EXDEV,
  EINVAL: E.EINVAL,
  ENAMETOOLONG: E.ENAMETOOLONG,
  EBADF: E.EBADF,
  EBUSY: E.EBUSY,
  ELOOP: E.ELOOP,
  ENOTSUP: E.EOPNOTSUPP,
  ENODATA: E.ENODATA ?? 61,
  ETIMEDOUT: E.ETIMEDOUT,
  EFBIG: E.EFBIG,
  EMFILE: E.EMFILE,
  ENOSYS: E.ENOSYS,
  ESTALE: E.ESTALE,
};

/** Negative errno for fuse-native callbacks. Anything that is not an FsError is EIO. */
export function toErrno(err: unknown): number {
  const code = (err as { code?: string } | undefined)?.code;
  const n = code && Object.prototype.hasOwnProperty.call(ERRNO, code) ? ERRNO[code as FsErrorCode] : E.EIO;
  return -n;
}
