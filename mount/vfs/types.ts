import type { BigIntStats } from 'node:fs';
import type { EntryType } from '../../core/provider';
import type { TimeSet } from '../../core/fd-times';

/** Attributes of one node of the virtual namespace. */
export interface Attr {
  /** Stable while the daemon runs (FUSE inode number). */
  ino: number;
  type: EntryType;
  /** Permission bits only (e.g. 0o644); the type is in `type`. */
  mode: number;
  /** Device number (st_rdev) of a chardev or blockdev. */
  rdev?: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  atimeMs: number;
  nlink: number;
  uid: number;
  gid: number;
  /** BLAKE3-256 hex of the content when known. */
  hash: string | null;
  /** Strong validator (quoted, ready for an ETag header); changes whenever the content changes. */
  etag: string;
  /** Changes here fail with EROFS. */
  readonly: boolean;
  /**
   * Exact times in nanoseconds since the epoch, when the source keeps them (a local disk):
   * the front ends prefer these to the millisecond floats above, which cannot hold every
   * nanosecond.
   */
  ns?: { atime: bigint; mtime: bigint; ctime: bigint };
}

/** A time to set: exact (seconds and nanoseconds), 'now', or 'omit' (left as it is). */
export type { TimeSet };

/** Who asks (the FUSE request's uid/gid): what is created belongs to them, like on the disk. */
export interface Caller {
  uid: number;
  gid: number;
}

export interface DirEntry {
  name: string;
  attr: Attr;
}

export interface OpenFlags {
  write?: boolean;
  create?: boolean;
  /** With create: fail with EEXIST when it exists (O_EXCL). */
  exclusive?: boolean;
  truncate?: boolean;
  append?: boolean;
  /** Permission bits for a created file (the caller's umask already applied). */
  mode?: number;
  /** Owner of a created file (default: the daemon's user). */
  owner?: Caller;
  /**
   * The caller is a kernel front end (FUSE) whose caches follow what it does through this
   * handle (the kernel drops a folder's attributes after its own CREATE, and answers the open
   * file's attributes itself): the index commits of this handle start no invalidation sweep.
   */
  kernel?: boolean;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/** A WebDAV dead property, stored in the index with its entry. `value` is the XML inner text/markup. */
export interface DeadProp {
  ns: string;
  name: string;
  value: string;
}

/**
 * The filesystem core shared by every front end (FUSE, WebDAV, `vdfs cat`). Paths are
 * virtual and absolute: '/', '/<location>/<rel>', '/.vdfs/by-hash/<hash>'.
 *
 * Every method throws FsError only: ENOENT (missing), ENOTDIR/EISDIR (wrong type),
 * EEXIST, ENOTEMPTY, EROFS (read-only location or virtual view), EXDEV (rename across
 * locations), EHOSTDOWN (no reachable replica; never a hang), EIO (verification or source
 * failure), ENOSPC, EINVAL/ENAMETOOLONG (bad names), EBADF (unknown handle).
 */
export interface Vfs {
  getattr(path: string): Promise<Attr>;
  /**
   * `opts.statFiles: false`: of a local directory's children only the sub-directories are
   * stat'ed on the disk first (for their size); the files' owners, link counts, atime and ctime
   * stay the index's defaults. `vdfs ls` prints none of those.
   */
  readdir(path: string, opts?: { statFiles?: boolean }): Promise<DirEntry[]>;
  readlink(path: string): Promise<string>;
  /** Opens (and with flags.create, creates) a file. Returns a handle for read/write/release. */
  open(path: string, flags?: OpenFlags): Promise<number>;
  /** Up to `length` bytes at `offset`; short only at end of file. */
  read(fh: number, offset: number, length: number): Promise<Buffer>;
  /** Like read, into the caller's buffer (no allocation per call); resolves to the byte count. */
  readInto(fh: number, buf: Buffer, offset: number): Promise<number>;
  /** Writes all of `data` at `offset` (at the end with flags.append). Returns bytes written. */
  write(fh: number, offset: number, data: Buffer): Promise<number>;
  /** Makes written data visible to later opens (close-to-open). */
  flush(fh: number): Promise<void>;
  /** Makes written data durable: once this resolves it survives kill -9 and power loss. */
  fsync(fh: number): Promise<void>;
  /** Closes the handle (flushes first); the handle number may be reused afterwards. */
  release(fh: number): Promise<void>;
  /** `kernel`: as for mkdir (the kernel truncates its own cached pages and takes the reply's attributes). */
  truncate(path: string, size: number, kernel?: boolean): Promise<void>;
  /** `kernel`: asked by a kernel front end (FUSE MKDIR), which caches the new folder from its own reply: no invalidation sweep for it. */
  mkdir(path: string, mode?: number, owner?: Caller, kernel?: boolean): Promise<void>;
  /** `kernel`: as for mkdir (the kernel drops the name and its folder's cached listing itself). */
  rmdir(path: string, kernel?: boolean): Promise<void>;
  /** `kernel`: as for rmdir. */
  unlink(path: string, kernel?: boolean): Promise<void>;
  /**
   * Atomic within a location, replacing a file or empty directory target; EXDEV across locations.
   * `noReplace`: EEXIST when `to` exists. `exchange`: swaps two existing names atomically
   * (RENAME_EXCHANGE), on local folders written through only (EINVAL elsewhere; ENOENT when either is missing).
   * `kernel`: as for rmdir (the kernel moves its own entries and drops both folders' listings).
   */
  rename(from: string, to: string, opts?: { noReplace?: boolean; exchange?: boolean; kernel?: boolean }): Promise<void>;
  symlink(target: string, path: string, owner?: Caller): Promise<void>;
  /**
   * mknod(2): `mode` holds the type bits and permissions, `rdev` a device's number (Linux
   * encoding). A regular file is created empty; FIFOs, sockets and devices only on local
   * folders written through (EPERM on cloud and write-back locations, EROFS on peers); EINVAL
   * for a directory or symlink type; EEXIST.
   */
  mknod(path: string, mode: number, rdev: number, owner?: Caller): Promise<void>;
  /** A hard link `to` naming the file `from` (local locations; EPERM where the source has none, EXDEV across locations). */
  link(from: string, to: string): Promise<void>;
  /** `kernel` (here and for setTimes and chown): a FUSE SETATTR, whose reply the kernel caches: as for mkdir. */
  chmod(path: string, mode: number, kernel?: boolean): Promise<void>;
  utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void>;
  /** utimensat: exact nanoseconds, UTIME_NOW, UTIME_OMIT. Cloud and peer locations keep the mtime only. */
  setTimes(path: string, atime: TimeSet, mtime: TimeSet, kernel?: boolean): Promise<void>;
  /** lchown; -1 keeps that id. Local locations only (EPERM elsewhere, unless nothing changes). */
  chown(path: string, uid: number, gid: number, kernel?: boolean): Promise<void>;
  /**
   * `user.vdfs.hash`, `user.vdfs.replicas`, `user.vdfs.pinned` (pinned paths only). Throws ENODATA for an unknown name.
   * They are read by name and never listed (docs/fuse.md, Extended attributes).
   */
  getxattr(path: string, name: string): Promise<Buffer>;
  statfs(path: string): Promise<StatFs>;
  /** Dead properties of an entry (WebDAV PROPPATCH/PROPFIND). */
  getProps(path: string): Promise<DeadProp[]>;
  /** Sets and removes dead properties atomically (all or nothing). */
  patchProps(path: string, set: DeadProp[], remove: { ns: string; name: string }[]): Promise<void>;
}

/** Content read through the block cache, as a front end that reads verified block files itself sees it (KernelVfs.nativeBlocks). */
export interface NativeBlocks {
  size: number;
  blockSize: number;
  /** The file of block `i` when it is cached and was verified during this run; else undefined. Never throws. */
  file(i: number): string | undefined;
  /** Reads block `i`'s cached file back and verifies it, so file(i) gives it; false when it is not cached (or was damaged). Never throws. */
  verify(i: number): Promise<boolean>;
}

/**
 * What the FUSE front end needs beyond `Vfs` (VfsCore is one): the descriptors it may answer
 * reads and writes with in its own threads, the handle's path, and a signal when the index
 * changes (for kernel cache invalidation). Methods throw FsError (EBADF for an unknown handle).
 */
export interface KernelVfs extends Vfs {
  /**
   * Gives back the memory the index connection's page cache holds (a walk of a big tree fills
   * it); called when a burst of requests is over. Never throws.
   */
  shrinkCaches(): void;
  /**
   * The descriptor a front end may pread directly for this handle, bypassing readInto (a real
   * file opened read-only); undefined otherwise. Valid until release(fh).
   */
  nativeReadFd(fh: number): number | undefined;
  /**
   * Content read through the block cache: size, block size and the verified file of each block
   * cached so far (read those directly instead of readInto); undefined for other handles. The
   * caller then verifies cached blocks ahead of its reader itself (NativeBlocks.verify), so the
   * handle's own reader stops loading them ahead (BlockReader.cachedAheadElsewhere).
   */
  nativeBlocks(fh: number): NativeBlocks | undefined;
  /** Calls `fn` (synchronously) with the path of a block file nativeBlocks handed out, before the cache deletes it (evicted, dropped, cleared). */
  onBlockFileRemoved(fn: (file: string) => void): void;
  /** The descriptor a front end may pwrite directly instead of calling write(); then it calls noteWritten. */
  nativeWriteFd(fh: number): number | undefined;
  /** Bookkeeping of a write done on nativeWriteFd. */
  noteWritten(fh: number, offset: number, n: number): void;
  /**
   * The descriptor of a local file open for writing that a front end may hand to the kernel to
   * write itself (FUSE passthrough); undefined for other handles. Throws EBADF for an unknown handle.
   */
  passthroughWriteFd(fh: number): number | undefined;
  /**
   * The front end handed this handle to the kernel (passthrough): no write will be seen, so every
   * flush and the close refresh the index, and getattr asks the descriptor for size and mtime.
   * Throws EBADF for an unknown handle.
   */
  passthroughWriting(fh: number): void;
  /**
   * Whether a front end may answer chown/chmod/utimens, getattr and flush of this handle itself
   * (fchown/fchmod/futimens/fstat on nativeWriteFd): a local file open for writing; or chown and
   * chmod (fchown/fchmod on nativeReadFd) of a local file open for reading. It then calls
   * noteSetattr after a change and flushed after a flush. Throws EBADF for an unknown handle.
   */
  nativeMeta(fh: number): boolean;
  /**
   * Bookkeeping after the front end changed owner, mode or times through nativeWriteFd (as
   * setattrOpen does), or owner or mode through nativeReadFd (the index then follows the disk).
   * `st`: the descriptor's fstat taken right after the change, when the front end has it (else
   * the VFS takes one). Throws EBADF.
   */
  noteSetattr(fh: number, st?: NotedStat): void;
  /**
   * A front end changed a local file through a descriptor of a handle that is gone meanwhile (a
   * SETATTR answered natively through a writer's descriptor on one reader thread while its
   * RELEASE, read on another, was handled first): the index follows the disk at `path`, as after
   * noteSetattr. Never throws.
   */
  noteChanged(path: string): void;
  /**
   * The front end answered a flush of this handle itself: the index is committed from the disk
   * now, in the background (a later flush, fsync or release waits for it; a failure is logged).
   * Throws EBADF for an unknown handle.
   */
  flushed(fh: number): void;
  /**
   * chown (-1 keeps an id), chmod and utimens through a handle open for writing on a local
   * location (its descriptor, no path walk); false when the handle is not such a file, and the
   * caller then uses the path-based calls. Throws FsError (EPERM, EBADF).
   */
  setattrOpen(fh: number, change: { uid: number; gid: number; mode?: number; atime: TimeSet; mtime: TimeSet }): boolean;
  /** Truncates through an open handle: its own copy when staged, the real file when local. */
  ftruncate(fh: number, size: number): Promise<void>;
  /** fallocate(2) on an open handle (ENOTSUP for a mode the content cannot honour). */
  fallocate(fh: number, mode: number, offset: number, len: number): Promise<void>;
  /** The virtual path the handle was opened on. */
  handlePath(fh: number): string;
  /**
   * Calls `fn` (synchronously; keep it cheap) whenever the index may have changed: with the
   * changed path when the change is one path (and, `subtree`, what is below it), without
   * when its extent is not known.
   */
  onChange(fn: (change?: PathChange) => void): void;
}

/** One virtual path whose index entry changed (canonical: '/loc/a/b'), and with `subtree` every path below it. */
export interface PathChange {
  path: string;
  subtree: boolean;
}

/** What a front end's fstat of an open file said (as BigIntStats has it): what noteSetattr records. */
export type NotedStat = Pick<BigIntStats, 'atimeNs' | 'ctimeNs' | 'mtimeNs' | 'ino' | 'dev' | 'uid' | 'gid' | 'nlink' | 'size' | 'mode'>;
