import type { Readable } from 'node:stream';

/**
 * What an entry is. `fifo`, `socket`, `chardev` and `blockdev` are the disk's special files:
 * they have no content (never hashed, read, uploaded or sent to peers) and exist only on local
 * locations (docs/vfs.md, POSIX fidelity).
 */
export type EntryType = 'file' | 'dir' | 'symlink' | SpecialType;
export type SpecialType = 'fifo' | 'socket' | 'chardev' | 'blockdev';

export const SPECIAL_TYPES: readonly SpecialType[] = ['fifo', 'socket', 'chardev', 'blockdev'];

/** A FIFO, socket or device node: an entry with no content. */
export function isSpecial(type: string): type is SpecialType {
  return type === 'fifo' || type === 'socket' || type === 'chardev' || type === 'blockdev';
}

/** The file-type bits (S_IFMT) of each entry type. */
export const TYPE_MODE_BITS: Record<EntryType, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  fifo: 0o010000,
  socket: 0o140000,
  chardev: 0o020000,
  blockdev: 0o060000,
};

/** The entry type of a mode's S_IFMT bits, or undefined for bits no entry type has. */
export function typeOfModeBits(mode: number): EntryType | undefined {
  const bits = mode & 0o170000;
  return (Object.keys(TYPE_MODE_BITS) as EntryType[]).find((t) => TYPE_MODE_BITS[t] === bits);
}

/** What a provider knows about one entry. Paths are relative POSIX paths; '' is the root. */
export interface ProviderEntry {
  name: string;
  type: EntryType;
  size: number;
  /** Modification time: whole seconds and nanoseconds, like struct timespec. */
  mtimeSec: number;
  mtimeNsec: number;
  mode: number;
  /** Changes whenever the content may have changed: inode+mtime locally, ETag or revision remotely. */
  version: string;
  /** Symlink target, for symlinks. */
  target?: string;
  /** Device number (st_rdev, as Linux encodes it) of a character or block device. */
  rdev?: number;
  /** Content hash when the source already knows it (a peer, a re-hashed local file). */
  hash?: string;
}

export interface ProviderFeatures {
  /** Supports putFile/mkdir/remove/rename. */
  write: boolean;
  /** Entries can be symlinks. */
  symlinks: boolean;
  /** Has real files on this machine that can be opened directly (see `realPath`). */
  localFiles: boolean;
  /**
   * `readRange` with `ReadOptions.version` refuses bytes of another version (S3 ETag, Drive
   * version), so a small read can be served without its block's hash (docs/read-pipeline.md).
   */
  versionedReads?: boolean;
  /**
   * Its listing (`walk`) answers from a change feed (Drive's changes.list), so polling an
   * unchanged source costs one request whatever its size; without it a poll reads the whole
   * listing (S3: one request per 1,000 keys), and the daemon polls big ones less often.
   */
  changeFeed?: boolean;
}

export interface ReadOptions {
  /** Fail with ESTALE-like EIO when the source's version differs from this. */
  version?: string;
  signal?: AbortSignal;
}

/**
 * One source of files: a local directory, an S3 prefix, a Drive folder, a peer's location.
 * Every method throws FsError: ENOENT for a missing path, ENOTDIR/EISDIR for the wrong type,
 * EINVAL for a path that tries to leave the root, EHOSTDOWN when the source is unreachable,
 * EROFS for writes on a read-only provider, EIO for anything else.
 */
/** How putFile places a file (see Provider.putFile). */
export interface PutOptions {
  ifVersion?: string | null;
  /** Kept where the source can (a disk): mode and mtime, and the owner when given (only root can give one away). */
  meta?: { mode: number; mtimeSec: number; mtimeNsec: number; uid?: number; gid?: number };
}

export interface Provider {
  readonly kind: string;
  readonly features: ProviderFeatures;
  /** Whether the source can be reached now. Never throws. */
  isOnline(): Promise<boolean>;
  /**
   * Optional: the cheapest request that sets the client up (credentials, signing, a kept-alive
   * connection), so the first reader does not pay for it. The answer is not used. Never throws.
   */
  warmUp?(): Promise<void>;
  /** Throws ENOENT when missing. Does not follow a final symlink. */
  stat(path: string): Promise<ProviderEntry>;
  /** Children of a directory. Throws ENOENT, ENOTDIR. */
  list(path: string): Promise<ProviderEntry[]>;
  /**
   * Up to `length` bytes from `offset`. Short only at end of file; empty at or past it.
   * Throws EINVAL for a negative offset or length, EISDIR for a directory.
   */
  readRange(path: string, offset: number, length: number, opts?: ReadOptions): Promise<Buffer>;
  /**
   * Optional: bytes [offset, offset + length) as one stream from one request (read-ahead
   * windows). Throws like readRange before the first byte (ESTALE when `opts.version` is no
   * longer the content's). The stream may end short or fail midway (EIO, EHOSTDOWN) when the
   * connection is cut: callers count bytes and ask again for the rest. It may also run past
   * `length` on servers that widen ranges: callers stop at `length` and destroy it.
   */
  readRangeStream?(path: string, offset: number, length: number, opts?: ReadOptions): Promise<Readable>;
  /** The whole content as a stream (used for hashing and copying). */
  readStream(path: string, opts?: ReadOptions): Promise<Readable>;
  /** Symlink target. Throws EINVAL when not a symlink. */
  readlink(path: string): Promise<string>;
  /** The absolute path of a real local file, when `features.localFiles`. Throws ENOTSUP otherwise. */
  realPath(path: string): string;
  /**
   * Replace (or create) a file with the content of a local file. With `ifVersion` a string,
   * only when the current version is that one; with `ifVersion` null, only when nothing is
   * there; otherwise it throws ESTALE and changes nothing. With `meta`, a source that keeps
   * modes and times on its files (a local folder) gives the placed file that mode and mtime
   * (exact to the nanosecond); others keep them in the index only and ignore it.
   * Throws EROFS, ENOSPC, EIO, EHOSTDOWN.
   */
  putFile(path: string, sourceFile: string, opts?: PutOptions): Promise<ProviderEntry>;
  /**
   * Optional: a server-side copy within this source (no bytes through vdfs). Only creates
   * (ESTALE when something is at `to`); copies `from` only while it is still `fromVersion`
   * (ESTALE otherwise), so the copy is exactly the indexed content. Throws EFBIG when the
   * source cannot copy it in one request (callers stream instead), EROFS, ENOENT, EHOSTDOWN, EIO.
   */
  copyFile?(from: string, to: string, opts: { fromVersion: string }): Promise<ProviderEntry>;
  /** Throws EEXIST, ENOENT (parent), EROFS. */
  mkdir(path: string): Promise<void>;
  /** Removes a file, symlink or empty directory. Throws ENOENT, ENOTEMPTY, EROFS. */
  remove(path: string): Promise<void>;
  /** Atomic rename within this provider, replacing a file target. Throws ENOENT, EROFS, ENOTEMPTY. */
  rename(from: string, to: string): Promise<void>;
  /** Frees resources. */
  close(): Promise<void>;
}
