import { fchmodSync, fchownSync, fstatSync } from 'node:fs';
import { toFsError } from '../../core/fs-error';
import { BlobReader } from './blob-reader';
import { VersionReader } from './version-reader';
import type { DiskStats } from './disk-stats';
import type { Handle, LocalHandle } from './handles';
import type { LiveSizes } from './live-sizes';
import { setTimesFd } from './posix-calls';
import type { NativeBlocks, NotedStat, TimeSet } from './types';

// The native front end's fast paths: what of an open handle it may read, write or change
// itself (descriptors, cached block files) instead of calling back into the VFS.

/**
 * The descriptor a front end may pread directly for this handle, bypassing readInto: a
 * real file opened read-only (a local location, or a staged copy). Undefined for content
 * read through the cache and for handles open for writing (see nativeWriteFd).
 * The descriptor stays valid until release(fh).
 */
export function readFdOf(h: Handle): number | undefined {
  return (h.kind === 'local' || h.kind === 'staged') && !h.writable ? h.fd.fd : undefined;
}

/**
 * The descriptor a front end may pwrite directly for this handle instead of calling write():
 * a real file open for writing at explicit offsets (local, or a staged copy; not O_APPEND).
 * After each such write the front end calls noteWritten.
 */
export function writeFdOf(h: Handle): number | undefined {
  return (h.kind === 'local' || h.kind === 'staged') && h.writable && !h.append ? h.fd.fd : undefined;
}

/**
 * Content read through the block cache (a blob handle: by hash, or one version of a remote
 * object not hashed yet): its size, block size and the verified file of each block cached so
 * far, which a front end may read directly instead of calling readInto. Undefined for other handles.
 */
export function blocksOf(h: Handle): NativeBlocks | undefined {
  if (h.kind !== 'blob' || !(h.reader instanceof BlobReader || h.reader instanceof VersionReader)) return undefined;
  const reader = h.reader;
  reader.cachedAheadElsewhere = true;
  return { size: reader.size, blockSize: reader.blockSize, file: (i) => reader.blockFile(i), verify: (i) => reader.verifyBlock(i) };
}

/**
 * chown, chmod and utimens of a file open for writing on a local location, through the
 * handle's own descriptor (fchown, fchmod, futimens: the inode the handle has open, no path
 * walk): `tar x` sends all three for every file it writes. The index follows at the next
 * flush or close (the handle is marked dirty); until then getattr shows the mode and mtime
 * from here. False when the handle is not such a file (the caller then changes by path).
 * Throws FsError (EPERM).
 */
export function setattrThroughFd(h: Handle, change: { uid: number; gid: number; mode?: number; atime: TimeSet; mtime: TimeSet }, disk: DiskStats, live: LiveSizes): boolean {
  if (h.kind !== 'local' || !h.writable) return false;
  const fd = h.fd.fd;
  const what = `setattr ${h.vpath}`;
  // Times first: without the addon there is no futimens, and nothing must have changed yet.
  if ((change.atime !== 'omit' || change.mtime !== 'omit') && !setTimesFd(fd, change.atime, change.mtime, what)) return false;
  try {
    // chown before chmod: it clears setuid/setgid, and a mode sent with it is the one wanted after.
    if (change.uid !== -1 || change.gid !== -1) fchownSync(fd, change.uid, change.gid);
    if (change.mode !== undefined) fchmodSync(fd, change.mode & 0o7777);
  } catch (err) {
    throw toFsError(err, what);
  }
  metaChanged(h, disk, live);
  return true;
}

/**
 * After owner, mode or times of a local file open for writing changed through its descriptor
 * (here, or in the native front end): the disk stats and the live mode and mtime from its fstat
 * (`noted`: the one the front end took right after the change), and the handle dirty, so its flush or close commits the index. Throws FsError (EBADF).
 */
export function metaChanged(h: LocalHandle, disk: DiskStats, live: LiveSizes, noted?: NotedStat): void {
  let st = noted;
  try {
    st ??= fstatSync(h.fd.fd, { bigint: true });
  } catch (err) {
    throw toFsError(err, `fstat ${h.vpath}`);
  }
  disk.set(h.entryId, st);
  live.changedMeta(h.vpath, st.mtimeNs);
  h.dirty = true;
}
