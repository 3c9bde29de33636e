import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { constants as osConstants } from 'node:os';

/** Opaque handle of a running session in the addon. */
export type NativeSession = { readonly __session: unique symbol };

/**
 * The vdfs FUSE addon (C sources in mount/fuse/native, built by node-gyp in .ci/setup). Every function
 * throws a TypeError on bad arguments; mount throws an Error with `errno` when mounting fails.
 */
export interface NativeFuse {
  /** Mounts and returns the /dev/fuse descriptor: mount(2) as root, fusermount's fd passing otherwise. */
  mount(mountpoint: string, fsname: string, allowOther: boolean, viaFusermount: boolean): number;
  /** umount2(MNT_DETACH); 0 or -errno. */
  unmount(mountpoint: string): number;
  /** Starts `threads` reader threads; onRequest gets each request not answered natively, null once the kernel ends the connection. */
  start(fd: number, threads: number, onRequest: (req: Buffer | null) => void): NativeSession;
  /** Writes one whole reply; 0 or -errno (-ENOENT: the request was interrupted or aborted meanwhile). */
  reply(s: NativeSession, buf: Buffer): number;
  /** Queues a kernel notification, written from the addon's own thread. */
  notify(s: NativeSession, buf: Buffer): number;
  /**
   * READs of `fh` are answered by pread(fd) in the reader threads from now on, and WRITEs by pwrite when `writable`.
   * With `nodeid` (a local file open for writing): also SETATTR (owner, mode, times), GETATTR and FLUSH of that node,
   * each followed by a note to onRequest (opcodes NATIVE_SETATTR and NATIVE_FLUSHED in native-server.ts).
   */
  registerFd(s: NativeSession, fh: number, fd: number, writable: boolean, nodeid?: number): number;
  /** How long the kernel may cache the attributes the addon answers (seconds). 0; absent from older builds. */
  setAttrTtl?(s: NativeSession, seconds: number): number;
  /** Returns once no native read uses the descriptor any more (then it may be closed). */
  unregisterFd(s: NativeSession, fh: number): number;
  /** READs of `fh` (content of `size` bytes in blocks of `blockSize`) inside blocks given by setBlockFile are answered natively. 0 or -errno. */
  registerBlocks(s: NativeSession, fh: number, blockSize: number, size: number): number;
  /** Block `index` of `fh` is read from this verified file (null: not any more). 0 or -errno. */
  setBlockFile(s: NativeSession, fh: number, index: number, path: string | null): number;
  /** Returns once no native read uses `fh`'s block files. */
  unregisterBlocks(s: NativeSession, fh: number): number;
  /**
   * Asks for a note (opcode 0x40000004: fh, block) when native READs of `fh` reach block `index`;
   * returns the highest block read natively when already there (nothing armed), -1 when armed, or -errno.
   */
  blockWake(s: NativeSession, fh: number, index: number): number;
  /** The next GETATTR of `nodeid` (within 50 ms) is answered with this fuse_attr_out (null: not any more). 0 or -errno. */
  primeAttr(s: NativeSession, nodeid: number, attrOut: Buffer | null): number;
  /**
   * OPENDIRs of `nodeid` within `ms` are answered natively (FOPEN_CACHE_DIR|KEEP_CACHE, a handle of
   * at least 2^51), as are their RELEASEDIRs (0: not any more). 0; absent from older builds.
   */
  freshDir?(s: NativeSession, nodeid: number, ms: number): number;
  /** No folder is fresh any more (freshDir) until marked again. 0. */
  dirsChanged?(s: NativeSession): number;
  /** The RELEASEDIR of natively opened handle `fh` goes to JS (JS read a listing through it). 0 or -ENOMEM. */
  adoptDir?(s: NativeSession, fh: number): number;
  /** FUSE_DEV_IOC_BACKING_OPEN: a backing id for FOPEN_PASSTHROUGH, or -errno (root, Linux >= 6.9). */
  backingOpen(s: NativeSession, fd: number): number;
  /** FUSE_DEV_IOC_BACKING_CLOSE; 0 or -errno. */
  backingClose(s: NativeSession, id: number): number;
  /** Whether the session keeps Node's event loop alive. */
  setRef(s: NativeSession, ref: boolean): void;
  /**
   * Counters; `opsSeen`/`opsNative`: requests by opcode (index) read from the device, and those answered natively;
   * `leadReads`: READs answered by the reader waiting on the device without handing the device over (docs/fuse.md);
   * `writeBehinds`: times a sequential run of native writes was handed to writeback early (absent from older builds);
   * `opsSeen` counts requests from the rings too.
   */
  stats(s: NativeSession): {
    nativeReads: number;
    nativeWrites: number;
    jsRequests: number;
    leadReads: number;
    writeBehinds?: number;
    /** Queues (CPUs) of FUSE over io_uring, 0 when not in use; requests taken off them (all but INIT, FORGET, INTERRUPT). */
    ringQueues?: number;
    ringRequests?: number;
    /** Requests a queue thread found while yielding after the previous one, instead of sleeping (see fuse-uring.c SPIN_NS). */
    ringSpinHits?: number;
    /** Requests taken off each queue (index: the CPU). */
    ringQueueRequests?: number[];
    opsSeen: number[];
    opsNative: number[];
  };
  /** malloc_trim(0): returns the allocator's free pages to the system; 1 when some were. */
  trimMemory(): number;
  /**
   * Every name of the open directory `fd` with fstatat(fd, name, AT_SYMLINK_NOFOLLOW), in one call
   * (the scanner's listing; absent from addons built before it). -errno when the directory cannot
   * be read. `nums` holds STAT_DIR_FIELDS numbers per name: st_mode, st_size, mtime seconds,
   * mtime nanoseconds, st_rdev, and the errno of that name's fstatat (0 when it succeeded).
   * `versions[i]` is `ino:size:mtimeNs` (exact), '' when the fstatat failed.
   */
  statDir?(fd: number): { names: string[]; versions: string[]; nums: Float64Array } | number;
  /**
   * statDir off the JS thread (one libuv pool task), for a folder's first listing through the
   * mount: resolves -errno when the directory cannot be read, else every name with
   * STAT_ASYNC_FIELDS numbers in `stats`: the errno of its fstatat (0: it succeeded), st_mode,
   * st_uid, st_gid, st_nlink, st_size, st_ino, st_dev, atime, mtime and ctime in nanoseconds.
   * Rejects only when the result could not be built. `fd` must stay open until it settles.
   */
  statDirAsync?(fd: number): Promise<{ names: string[]; stats: BigInt64Array } | number>;
  /**
   * A zeroed ArrayBuffer of at least `bytes` in its own 2 MiB-aligned mapping advised
   * MADV_HUGEPAGE (the block pool's slab), or -errno. Absent from older builds.
   */
  hugePageBuffer?(bytes: number): ArrayBuffer | number;
  /**
   * Up to `length` bytes of the file at `path` (opened O_NOFOLLOW) into `buffer`, in one libuv pool
   * task: resolves the bytes read or -errno. `buffer` must not be reused before it settles.
   */
  readFileInto?(path: string, buffer: Buffer, length: number): Promise<number>;
  /**
   * posix_fadvise(WILLNEED) of each file (opened O_NOFOLLOW, O_NONBLOCK, then closed): the disk
   * reads them all at once. Synchronous; returns how many were advised (others are skipped).
   */
  adviseWillNeed?(paths: string[]): number;
  /** Creates `path` (O_EXCL, O_NOFOLLOW, `mode`) holding `buffer`, in one pool task: resolves 0 or -errno (a partial file may remain). */
  writeNewFile?(path: string, buffer: Buffer, mode: number): Promise<number>;
  /** futimens(2), exact to the nanosecond (UTIME_NOW/UTIME_OMIT as a tv_nsec): 0, or -errno. */
  futimens?(fd: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): number;
  /** F_SETFL O_NOATIME on an open descriptor: 0, -EBADF when not open for reading, -EPERM when neither owner nor CAP_FOWNER. */
  noAtime?(fd: number): number;
  /**
   * FUSE over io_uring, before INIT is answered with FUSE_OVER_IO_URING: sets up a ring per possible CPU.
   * The number of queues, or -errno (then the flag must not be sent). Absent from older builds.
   */
  uringPrepare?(s: NativeSession): number;
  /** After INIT's reply: starts the queue threads (each pinned to its CPU), which register the ring entries. 0 or -errno. */
  uringStart?(s: NativeSession): number;
  /** Joins the reader threads and closes the device. Idempotent. */
  stop(s: NativeSession): void;
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

/** The code name of an errno the addon answered (a positive number, or the negative return): 'ENOENT', or 'EIO' for one Node does not name. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(Math.abs(errno)) ?? 'EIO';
}

/** Numbers per name in `NativeFuse.statDir`'s `nums`. */
export const STAT_DIR_FIELDS = 6;

/** Numbers per name in `NativeFuse.statDirAsync`'s `stats`. */
export const STAT_ASYNC_FIELDS = 11;

/**
 * Where the built addon is, from the sources (tap) or from dist/. It lives in core/ because two
 * layers use it: the FUSE front end (mount/fuse) and the VFS's POSIX calls (mount/vfs/posix-calls).
 */
export function addonCandidates(): string[] {
  const rel = join('mount', 'fuse', 'native', 'build', 'Release', 'vdfs_fuse.node');
  return [resolve(__dirname, '..', rel), resolve(__dirname, '..', '..', rel)];
}

let cached: { addon?: NativeFuse; error?: Error } | undefined;

/** Loads the addon once; returns the error (never throws) when it is missing or cannot load. */
export function loadNativeFuse(): { addon?: NativeFuse; error?: Error } {
  if (cached) return cached;
  const file = addonCandidates().find((f) => existsSync(f));
  if (!file) {
    cached = { error: new Error(`the native FUSE addon is not built (looked for ${addonCandidates()[0]}; run .ci/setup)`) };
    return cached;
  }
  try {
    cached = { addon: require(file) as NativeFuse };
  } catch (err) {
    cached = { error: new Error(`the native FUSE addon at ${file} does not load: ${(err as Error).message}`) };
  }
  return cached;
}
