import { closeSync, constants as C, fstatSync, lstatSync, openSync, readdirSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { errnoName, loadNativeFuse, STAT_DIR_FIELDS, type NativeFuse } from '../core/native-addon';

/** Type codes of `DirListing.types`. */
export const T_GONE = 0,
  T_FILE = 1,
  T_DIR = 2,
  T_SYMLINK = 3,
  T_OTHER = 4,
  T_ERROR = 5,
  T_FIFO = 6,
  T_SOCKET = 7,
  T_CHARDEV = 8,
  T_BLOCKDEV = 9;

/** One directory as the walker saw it: names, and per name what `lstat` said. */
export interface DirListing {
  names: string[];
  types: Uint8Array;
  /** `ino:size:mtimeNs`, the local version token (providers/local localVersion). */
  versions: string[];
  modes: Int32Array;
  sizes: Float64Array;
  mtimeSec: Float64Array;
  mtimeNsec: Int32Array;
  /** st_rdev of device nodes (0 for everything else). */
  rdevs: Float64Array;
  /** For T_ERROR names: [index, message]. */
  errors: [number, string][];
}

/**
 * readdir + lstat of one directory, with blocking calls (this runs on a worker thread: the
 * lstat calls are most of a rescan's time). With the addon (`native`, the default when it
 * loads) one call reads the names and fstatat's each in the open directory; without it, each
 * name is lstat'ed as `/proc/self/fd/N/name`. Both look every name up in the open directory and
 * never follow a symlink. Below the root (`ino` given), the directory is
 * opened without following a symlink and must be the one its parent's listing saw: a
 * directory swapped for a link to somewhere else during the scan is never listed. Its entries
 * are then read through the open fd. Throws the system error for the directory itself
 * (ENOENT, EACCES; ENOTDIR when replaced); a name that fails lstat comes back as T_ERROR.
 */
export function listDir(dir: string, ino?: string, native: NativeStatDir | undefined = nativeStatDir()): DirListing {
  let fd: number | undefined;
  let names: string[] | undefined;
  try {
    fd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY | (ino === undefined ? 0 : C.O_NOFOLLOW));
    if (ino !== undefined && String(fstatSync(fd, { bigint: true }).ino) !== ino)
      throw Object.assign(new Error('replaced by another directory or a symlink while being scanned; not followed'), { code: 'ENOTDIR' });
    if (native) {
      const r = native(fd);
      if (typeof r === 'number') throw errnoError(-r, `scandir '${dir}'`);
      return fromNative(r);
    }
    names = readdirSync(`/proc/self/fd/${fd}`);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ELOOP') e.code = 'ENOTDIR';
    throw e;
  } finally {
    // Closed here on every path but the JS fallback's, which still needs it for the lstat calls.
    if (fd !== undefined && names === undefined) closeSync(fd);
  }
  try {
    return statAll(`/proc/self/fd/${fd}/`, names);
  } finally {
    closeSync(fd);
  }
}

/**
 * Which of `names` exist in directory `dir` now (opened as listDir opens it, each name
 * lstat'ed inside the open directory, nothing followed). A name created after the listing (a
 * write through the mount while a scan runs) is then not taken for a deleted one. An
 * unreadable or replaced directory: none. Never throws.
 */
export function namesPresent(dir: string, ino: string | undefined, names: Iterable<string>): Set<string> {
  const present = new Set<string>();
  let fd: number | undefined;
  try {
    fd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY | (ino === undefined ? 0 : C.O_NOFOLLOW));
    if (ino !== undefined && String(fstatSync(fd, { bigint: true }).ino) !== ino) return present;
    for (const name of names) {
      try {
        lstatSync(`/proc/self/fd/${fd}/${name}`);
        present.add(name);
      } catch {
        /* gone: deleted */
      }
    }
  } catch {
    /* the directory itself is gone or unreadable */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return present;
}

/** The addon's batched fstatat (NativeFuse.statDir). */
export type NativeStatDir = NonNullable<NativeFuse['statDir']>;

let native: { fn?: NativeStatDir } | undefined;

/**
 * The addon's statDir, or undefined when the addon does not load (not built, another platform)
 * or predates it: the listing then falls back to lstat of `/proc/self/fd/N/name`, the same
 * no-follow guarantee at 2.3x the system time per name.
 */
export function nativeStatDir(): NativeStatDir | undefined {
  if (!native) {
    const addon = loadNativeFuse().addon;
    native = { fn: addon?.statDir ? addon.statDir.bind(addon) : undefined };
  }
  return native.fn;
}

function errnoError(errno: number, what: string): NodeJS.ErrnoException {
  const code = errnoName(errno);
  return Object.assign(new Error(`${code}: ${what}`), { code, errno: -errno });
}

/** st_mode's file type bits to a type code. */
function typeOf(mode: number): number {
  switch (mode & C.S_IFMT) {
    case C.S_IFREG:
      return T_FILE;
    case C.S_IFDIR:
      return T_DIR;
    case C.S_IFLNK:
      return T_SYMLINK;
    case C.S_IFIFO:
      return T_FIFO;
    case C.S_IFSOCK:
      return T_SOCKET;
    case C.S_IFCHR:
      return T_CHARDEV;
    case C.S_IFBLK:
      return T_BLOCKDEV;
    default:
      return T_OTHER;
  }
}

function fromNative(r: { names: string[]; versions: string[]; nums: Float64Array }): DirListing {
  const n = r.names.length;
  const l = emptyListing(r.names);
  l.versions = r.versions;
  const f = r.nums;
  for (let i = 0, o = 0; i < n; i++, o += STAT_DIR_FIELDS) {
    const errno = f[o + 5];
    if (errno === osConstants.errno.ENOENT) {
      l.types[i] = T_GONE;
      continue;
    }
    if (errno !== 0) {
      l.types[i] = T_ERROR;
      l.errors.push([i, errnoError(errno, `lstat '${r.names[i]}'`).message]);
      continue;
    }
    const t = typeOf(f[o]);
    l.types[i] = t;
    if (t === T_CHARDEV || t === T_BLOCKDEV) l.rdevs[i] = f[o + 4];
    l.modes[i] = f[o] & 0o7777;
    l.sizes[i] = f[o + 1];
    l.mtimeSec[i] = f[o + 2];
    l.mtimeNsec[i] = f[o + 3];
  }
  return l;
}

function emptyListing(names: string[]): DirListing {
  const n = names.length;
  return {
    names,
    types: new Uint8Array(n),
    versions: new Array<string>(n).fill(''),
    modes: new Int32Array(n),
    sizes: new Float64Array(n),
    mtimeSec: new Float64Array(n),
    mtimeNsec: new Int32Array(n),
    rdevs: new Float64Array(n),
    errors: [],
  };
}

function statAll(prefix: string, names: string[]): DirListing {
  const n = names.length;
  const l = emptyListing(names);
  for (let i = 0; i < n; i++) {
    let st;
    try {
      st = lstatSync(prefix + names[i], { bigint: true, throwIfNoEntry: false });
    } catch (err) {
      l.types[i] = T_ERROR;
      l.errors.push([i, (err as Error).message]);
      continue;
    }
    if (!st) {
      l.types[i] = T_GONE;
      continue;
    }
    l.types[i] = st.isFile()
      ? T_FILE
      : st.isDirectory()
        ? T_DIR
        : st.isSymbolicLink()
          ? T_SYMLINK
          : st.isFIFO()
            ? T_FIFO
            : st.isSocket()
              ? T_SOCKET
              : st.isCharacterDevice()
                ? T_CHARDEV
                : st.isBlockDevice()
                  ? T_BLOCKDEV
                  : T_OTHER;
    if (l.types[i] === T_CHARDEV || l.types[i] === T_BLOCKDEV) l.rdevs[i] = Number(st.rdev);
    l.versions[i] = `${st.ino}:${st.size}:${st.mtimeNs}`;
    l.modes[i] = Number(st.mode) & 0o7777;
    l.sizes[i] = Number(st.size);
    l.mtimeSec[i] = Number(st.mtimeNs / 1000000000n);
    l.mtimeNsec[i] = Number(st.mtimeNs % 1000000000n);
  }
  return l;
}
