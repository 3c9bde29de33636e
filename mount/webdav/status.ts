import type { FsErrorCode } from '../../core/fs-error';

/**
 * The one mapping from FsError codes to HTTP status at the WebDAV edge. A
 * `Record<FsErrorCode, number>` so adding a code to FS_ERROR_CODES fails the build
 * until it is mapped here. Methods override a few codes where RFC 4918 says so
 * (MKCOL on an existing resource is 405, a missing parent is 409), but everything
 * else goes through this table.
 */
export const STATUS_FOR_CODE: Record<FsErrorCode, number> = {
  ENOENT: 404,
  EEXIST: 405, // a resource is already mapped there (MKCOL, exclusive create)
  ENOTDIR: 409, // an intermediate collection is a file (RFC 4918: Conflict)
  EISDIR: 405, // GET-style byte operations on a collection, PUT over a collection
  ENOTEMPTY: 409,
  EROFS: 403,
  EACCES: 403,
  EPERM: 403,
  EIO: 502, // the source failed or returned bytes that did not verify
  EHOSTDOWN: 503, // no reachable replica: fail fast, clients may retry
  ENOSPC: 507,
  EXDEV: 502, // never reached: COPY/MOVE fall back to copy+delete themselves
  EINVAL: 400,
  ENAMETOOLONG: 414,
  EBADF: 500,
  EBUSY: 423,
  ELOOP: 508,
  ENOTSUP: 501,
  ENODATA: 404,
  ETIMEDOUT: 504,
  EFBIG: 413,
  EMFILE: 503,
  ENOSYS: 501,
  ESTALE: 412, // the resource changed since the version the change was based on
};

export const REASON: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  206: 'Partial Content',
  207: 'Multi-Status',
  304: 'Not Modified',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  423: 'Locked',
  424: 'Failed Dependency',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  507: 'Insufficient Storage',
  508: 'Loop Detected',
};

/** `HTTP/1.1 404 Not Found` as used inside multistatus bodies. */
export function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${REASON[status] ?? 'Unknown'}`;
}
