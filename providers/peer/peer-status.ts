import type { FsErrorCode } from '../../core/fs-error';

/**
 * The one mapping from FsError codes to HTTP status at the peer edge, part of the peer
 * protocol: the server answers with it (`mount/peer-server`), the client reads it back
 * (`peer-client.ts errorOf`) when an answer carries no JSON body (HEAD, a proxy in between).
 * A `Record<FsErrorCode, …>`, so adding a code to FS_ERROR_CODES fails the build until it is
 * mapped here, as in `mount/fuse/errno.ts` and `mount/webdav/status.ts`.
 *
 * It agrees with WebDAV's table wherever the status means the same thing to any HTTP client,
 * and differs where WebDAV's answer is WebDAV's own (RFC 4918) or the situation differs:
 * - EBUSY → 429, not 423: 423 Locked means a WebDAV lock holds the resource; at the peer edge
 *   EBUSY means "too many attempts / busy now, try later", which is what 429 says.
 * - ESTALE → 409, not 412: 412 answers a failed precondition the *request* carried (If-Match);
 *   peer requests carry none. Here ESTALE means the indexed file no longer holds the content
 *   its hash names: a conflict with the resource's current state.
 * - EIO → 500, not 502: WebDAV is a gateway to other sources (502 Bad Gateway); the peer
 *   server reads only its own disk and index, so an EIO is its own failure.
 * - EEXIST, EISDIR → 409 and ELOOP → 500, not 405/508: those WebDAV statuses describe
 *   MKCOL/PUT and bindings, which the peer protocol does not have.
 * - ETIMEDOUT → 503: the server is not a gateway waiting on an upstream (504).
 */
export const PEER_STATUS = {
  ENOENT: 404, // also "not shared with you": the same answer, so nothing leaks
  EEXIST: 409,
  ENOTDIR: 409,
  EISDIR: 409,
  ENOTEMPTY: 409,
  EROFS: 403,
  EACCES: 403,
  EPERM: 403,
  EIO: 500,
  EHOSTDOWN: 503,
  ENOSPC: 507,
  EXDEV: 500, // never reached: the protocol has no rename
  EINVAL: 400,
  ENAMETOOLONG: 414,
  EBADF: 500,
  EBUSY: 429,
  ELOOP: 500, // never reached: opening beneath the root refuses a symlink as ESTALE
  ENOTSUP: 501,
  ENODATA: 404,
  ETIMEDOUT: 503,
  EFBIG: 413,
  EMFILE: 503,
  ENOSYS: 501,
  ESTALE: 409,
} as const satisfies Record<FsErrorCode, number>;

/** Every status the peer server sends for an error (416 is sent for a range past the end). */
export type PeerErrorStatus = (typeof PEER_STATUS)[FsErrorCode] | 416;

/**
 * The client's reading of an error status without a JSON body: the code the server most
 * likely meant. Complete over PeerErrorStatus (the compiler checks it); any other status is EIO.
 */
export const CODE_FOR_PEER_STATUS: Record<PeerErrorStatus, FsErrorCode> = {
  400: 'EINVAL',
  403: 'EACCES',
  404: 'ENOENT',
  409: 'ESTALE',
  413: 'EFBIG',
  414: 'ENAMETOOLONG',
  416: 'EINVAL',
  429: 'EBUSY',
  500: 'EIO',
  501: 'ENOTSUP',
  503: 'EHOSTDOWN',
  507: 'ENOSPC',
};

/** The code for an error status (EIO for one the peer protocol does not use). */
export function codeOfPeerStatus(status: number): FsErrorCode {
  return Object.prototype.hasOwnProperty.call(CODE_FOR_PEER_STATUS, status) ? CODE_FOR_PEER_STATUS[status as PeerErrorStatus] : 'EIO';
}
