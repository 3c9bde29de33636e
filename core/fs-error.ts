import { REFUSED_CODES } from './net-codes';

/**
 * The one error type of vdfs. Every layer (providers, index, cache, vfs) throws
 * FsError; each front end maps `code` once (FUSE: errno, WebDAV: HTTP status).
 */
export const FS_ERROR_CODES = [
  'ENOENT',
  'EEXIST',
  'ENOTDIR',
  'EISDIR',
  'ENOTEMPTY',
  'EROFS',
  'EACCES',
  'EPERM',
  'EIO',
  'EHOSTDOWN',
  'ENOSPC',
  'EXDEV',
  'EINVAL',
  'ENAMETOOLONG',
  'EBADF',
  'EBUSY',
  'ELOOP',
  'ENOTSUP',
  'ENODATA',
  'ETIMEDOUT',
  'EFBIG',
  'EMFILE',
  'ENOSYS',
  // The source's version is not the one a change was based on (If-Match failed): never overwrite.
  'ESTALE',
] as const;

export type FsErrorCode = (typeof FS_ERROR_CODES)[number];

/**
 * `code` says what went wrong (the front ends map it), `message` says where and why in words
 * for a person, without the code; `cause` is the underlying error. They are kept apart so no
 * edge has to strip a code out of a message: print `describeError(err)` where both belong in one line.
 */
export class FsError extends Error {
  readonly code: FsErrorCode;
  override readonly cause?: unknown;

  constructor(code: FsErrorCode, message: string, cause?: unknown) {
    super(message);
    this.name = 'FsError';
    this.code = code;
    this.cause = cause;
  }

  /** `ENOENT: message`: what `${err}` shows (the stack and `.message` hold the words only). */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

/**
 * An FsError without a stack, for an answer the caller expects and handles (a name not in the
 * index, as every LOOKUP of a name about to be created gets): capturing the stack was ~10-20 µs
 * of such a request.
 */
export function expectedError(code: FsErrorCode, message: string): FsError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new FsError(code, message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** `CODE: message` for an FsError, the message for anything else: for logs and reports that show one line. */
export function describeError(err: unknown): string {
  if (err instanceof FsError) return err.toString();
  return (err as Error | undefined)?.message ?? String(err);
}

export function isFsError(err: unknown): err is FsError {
  return err instanceof FsError;
}

const CODES = new Set<string>(FS_ERROR_CODES);

/**
 * Turns anything thrown by node:fs (or anything else) into an FsError.
 * Unknown system errors become EIO so nothing escapes unmapped.
 */
export function toFsError(err: unknown, context: string): FsError {
  if (err instanceof FsError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const msg = (err as Error | undefined)?.message ?? String(err);
  if (code && CODES.has(code)) return new FsError(code as FsErrorCode, `${context}: ${msg}`, err);
  if (code === 'EDQUOT') return new FsError('ENOSPC', `${context}: ${msg}`, err);
  if (code && REFUSED_CODES.has(code)) return new FsError('EHOSTDOWN', `${context}: ${msg}`, err);
  return new FsError('EIO', `${context}: ${msg}`, err);
}
