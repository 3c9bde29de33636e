import type { FsErrorCode } from '../../core/fs-error';

/** Process exit status per error code: scripts can tell "not found" from "busy" from "bad input". */
export const EXIT_CODES: Record<FsErrorCode, number> = {
  EINVAL: 2,
  ENAMETOOLONG: 2,
  ENOTSUP: 2,
  ENOSYS: 2,
  ENOENT: 3,
  ENOTDIR: 3,
  EISDIR: 3,
  ENODATA: 3,
  EEXIST: 4,
  ENOTEMPTY: 4,
  EBUSY: 5,
  EMFILE: 5,
  ESTALE: 5,
  EHOSTDOWN: 6,
  ETIMEDOUT: 6,
  EACCES: 7,
  EPERM: 7,
  EROFS: 7,
  ENOSPC: 8,
  EFBIG: 8,
  EIO: 1,
  EXDEV: 1,
  EBADF: 1,
  ELOOP: 1,
};
