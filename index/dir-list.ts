import { closeSync, constants as C, fstatSync, lstatSync, openSync, readdirSync } from 'node:fs';

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
 * lstat calls are most of a rescan's time). Below the root (`ino` given), the directory is
 * opened without following a symlink and must be the one its parent's listing saw: a
 * directory swapped for a link to somewhere else during the scan is never listed. Its entries
 * are then read through the open fd. Throws the system error for the directory itself
 * (ENOENT, EACCES; ENOTDIR when replaced); a name that fails lstat comes back as T_ERROR.
 */
export function listDir(dir: string, ino?: string): DirListing {
  let fd: number | undefined;
  let names: string[];
  try {
    fd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY | (ino === undefined ? 0 : C.O_NOFOLLOW));
    if (ino !== undefined && String(fstatSync(fd, { bigint: true }).ino) !== ino)
      throw Object.assign(new Error('replaced by another directory or a symlink while being scanned; not followed'), { code: 'ENOTDIR' });
    names = readdirSync(`/proc/self/fd/${fd}`);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ELOOP') e.code = 'ENOTDIR';
    throw e;
  }
  try {
    return statAll(`/proc/self/fd/${fd}/`, names);
  } finally {
    closeSync(fd);
  }
}

function statAll(prefix: string, names: string[]): DirListing {
  const n = names.length;
  const l: DirListing = {
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
