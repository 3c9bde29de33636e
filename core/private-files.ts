import { chmodSync, closeSync, constants as C, lstatSync, mkdirSync, openSync, promises as fsp, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { FsError, toFsError } from './fs-error';
import { fdPath } from './beneath';

/**
 * vdfs state (index, config, keys, cached blocks, staged files) is private to the user who
 * runs it: files 0600, directories 0700, on creation and again whenever an existing home is
 * opened (homes made by older versions were 0644/0755). A state directory owned by someone
 * else (cache.dir pointed at a shared place another user created first) is refused: its
 * owner could plant symlinks in it that our cleanup or our writes would follow.
 */

const myUid = (): number | undefined => process.getuid?.();

/**
 * Creates `dir` (and missing parents, 0700) or checks an existing one: it must be a directory
 * owned by us (or the link to one we own, when the link is ours too); group/other bits are
 * removed. Throws EACCES for a directory (or link) owned by another user (unless
 * `refuseForeign` is false: then it is left as it is), ENOTDIR, EIO.
 */
export function ensurePrivateDir(dir: string, refuseForeign = true): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw toFsError(err, `create ${dir}`);
  }
  const uid = myUid();
  let lst;
  try {
    lst = lstatSync(dir);
  } catch (err) {
    throw toFsError(err, dir);
  }
  if (uid !== undefined && lst.uid !== uid && !refuseForeign) return;
  if (uid !== undefined && lst.isSymbolicLink() && lst.uid !== uid && lst.uid !== 0)
    throw new FsError('EACCES', `${dir} is a symlink owned by uid ${lst.uid}, not by you (uid ${uid}); refusing to keep vdfs state through it`);
  const st = statSync(dir);
  if (!st.isDirectory()) throw new FsError('ENOTDIR', `${dir} is not a directory`);
  if (uid !== undefined && st.uid !== uid) {
    if (!refuseForeign) return;
    throw new FsError('EACCES', `${dir} is owned by uid ${st.uid}, not by you (uid ${uid}); refusing to keep vdfs state there (pick a folder of your own)`);
  }
  if ((st.mode & 0o077) !== 0) {
    try {
      chmodSync(dir, st.mode & 0o700);
    } catch (err) {
      throw toFsError(err, `chmod ${dir}`);
    }
  }
}

/**
 * Makes an existing file of ours 0600 (group/other bits removed); a missing one is created
 * empty with mode 0600 when `create`. Never follows a symlink. Throws EIO/EACCES.
 */
export function ensurePrivateFile(file: string, create = false): void {
  let st;
  try {
    st = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toFsError(err, file);
    if (!create) return;
    try {
      closeSync(openSync(file, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw toFsError(e, `create ${file}`);
    }
    return;
  }
  if (!st.isFile()) return;
  const uid = myUid();
  if ((st.mode & 0o077) !== 0 && (uid === undefined || st.uid === uid)) {
    try {
      chmodSync(file, st.mode & 0o700);
    } catch (err) {
      throw toFsError(err, `chmod ${file}`);
    }
  }
}

/**
 * Removes `name` inside the open directory `dir` and everything below it, never following a
 * symlink: each directory is opened O_NOFOLLOW and emptied through its own fd, so a link
 * planted (or swapped in) anywhere is removed as a link and its target left alone.
 */
async function removeAt(dir: fsp.FileHandle, name: string): Promise<void> {
  const at = fdPath(dir, name);
  let sub: fsp.FileHandle;
  try {
    sub = await fsp.open(at, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code !== 'ELOOP' && code !== 'ENOTDIR') throw err;
    await fsp.unlink(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    return;
  }
  try {
    for (const child of await fsp.readdir(fdPath(sub))) await removeAt(sub, child);
  } finally {
    await sub.close().catch(() => undefined);
  }
  await fsp.rmdir(at).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

/**
 * `rm -rf path` that never follows a symlink (path's parent is opened as configured; from
 * there on nothing is followed). A missing path is not an error. Throws FsError.
 */
export async function removeTree(path: string): Promise<void> {
  let parent: fsp.FileHandle;
  try {
    parent = await fsp.open(dirname(path), C.O_RDONLY | C.O_DIRECTORY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw toFsError(err, `remove ${path}`);
  }
  try {
    await removeAt(parent, basename(path));
  } catch (err) {
    throw toFsError(err, `remove ${path}`);
  } finally {
    await parent.close().catch(() => undefined);
  }
}
