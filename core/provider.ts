import type { Readable } from 'node:stream';

export type EntryType = 'file' | 'dir' | 'symlink';

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
export interface Provider {
  readonly kind: string;
  readonly features: ProviderFeatures;
  /** Whether the source can be reached now. Never throws. */
  isOnline(): Promise<boolean>;
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
   * there; otherwise it throws ESTALE and changes nothing. Throws EROFS, ENOSPC, EIO, EHOSTDOWN.
   */
  putFile(path: string, sourceFile: string, opts?: { ifVersion?: string | null }): Promise<ProviderEntry>;
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
