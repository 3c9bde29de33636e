/**
 * The peer protocol (version 1, under `/v1/`): its ALPN names, JSON shapes and error status
 * table. Both sides (providers/peer, mount/peer-server) import these, so a change here is a
 * protocol change: add fields, never change or remove one.
 */
import type { FsErrorCode } from './fs-error';
import type { EntryType } from './provider';

/** ALPN protocol of the pairing exchange: the only thing an unpaired certificate may do. */
export const ALPN_PAIR = 'vdfs-pair/1';
/** ALPN protocol of every other peer request. */
export const ALPN_PEER = 'http/1.1';

/** `GET /v1/node`. */
export interface NodeInfo {
  id: string;
  name: string;
  protocol: 1;
}

/** One shared location in `GET /v1/locations`. */
export interface SharedLocation {
  name: string;
  /** Changes when the owner removes and re-adds a location of that name: the replica starts over. */
  epoch: string;
  /** The owner's latest change sequence (all locations). */
  seq: number;
}

/** Per-block hashes of a file's content, so the reader can verify every fetched block. */
export interface WireBlob {
  size: number;
  blockSize: number;
  /** 32 bytes per block, base64. */
  blockHashes: string;
}

/** An entry's fields as replicated. */
export interface WireEntry {
  type: EntryType;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  mode: number;
  version: string | null;
  hash: string | null;
  target: string | null;
}

/** One line of `GET /v1/snapshot` after the header: an entry and its path ('' is the root). */
export interface SnapshotLine {
  path: string;
  entry: WireEntry;
  blob?: WireBlob;
}

/**
 * The first line of `GET /v1/snapshot`: everything up to `seq` is in it. The entries follow
 * as they are read (the owner never holds the tree), so their count comes last (SnapshotEnd).
 */
export interface SnapshotHeader {
  location: string;
  epoch: string;
  seq: number;
}

/** The last line of `GET /v1/snapshot`: how many entry lines came before it. Without it the answer was cut off. */
export interface SnapshotEnd {
  end: true;
  count: number;
}

/** One change of `GET /v1/changes`. */
export interface WireChange {
  seq: number;
  op: 'put' | 'delete' | 'move';
  path: string;
  toPath: string | null;
  entry: WireEntry | null;
  blob?: WireBlob;
}

/** `GET /v1/changes?location=L&since=N[&limit=K][&wait=S]`. */
export interface ChangesPage {
  epoch: string;
  changes: WireChange[];
  /** Ask for `since=next` next time (changes of other locations are skipped over too). */
  next: number;
  /** More are waiting right now: ask again without waiting. */
  more: boolean;
}

/** `POST /v1/pair` body, over the ALPN `vdfs-pair/1` connection. */
export interface PairRequest {
  token: string;
  name: string;
  addresses: string[];
  /** What the joining node shares with the inviter. */
  shares: string[];
}

/** `POST /v1/pair` answer. */
export interface PairAnswer {
  id: string;
  name: string;
  /** Locations the inviter shares with the joining node. */
  shares: string[];
}

/**
 * The one mapping from FsError codes to HTTP status at the peer edge, part of the peer
 * protocol: the server answers with it (`mount/peer-server`), the client reads it back
 * (`providers/peer/peer-client.ts errorOf`) when an answer carries no JSON body (HEAD, a proxy in between).
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
