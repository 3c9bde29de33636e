import { closeSync, constants as C, fstatSync, openSync, readSync } from 'node:fs';
import { loadNativeFuse } from '../core/native-addon';
import { BlockHasher, type BlockHashes } from './block-hasher';

/** What hashing one local file found: its hashes and what fstat said after the read. */
export interface FileHash extends BlockHashes {
  ino: bigint;
  mtimeNs: bigint;
  /** The file changed (size or mtime) while it was read: the hash may be of mixed content. */
  changed: boolean;
}

/** One worker's reusable state: a hasher and a read buffer of one block. */
export class FileHasher {
  private hasher: BlockHasher | undefined;
  private buf = Buffer.alloc(0);

  /**
   * Hashes a regular file block by block with blocking reads (this runs on a worker thread).
   * Never follows a symlink. Throws the system error (ENOENT, EACCES, ELOOP), or EINVAL for
   * something that is not a regular file.
   */
  hash(path: string, blockSize: number): FileHash {
    const fd = openNoAtime(path);
    try {
      return this.hashFd(fd, blockSize);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Hashes the file a descriptor of this process has open, with O_NOATIME like hash(): read
   * through `fd` itself, made O_NOATIME (the addon's noAtime), when it was opened for reading;
   * else reopened read-only through /proc/self/fd, which names that inode itself, with no path
   * lookup. For small files just closed by the daemon's own writer, on the event
   * loop. Undefined when it is bigger than `maxSize` (nothing read). Throws like hash().
   */
  hashOpen(fd: number, blockSize: number, maxSize = Infinity): FileHash | undefined {
    // Read through `fd` itself once it is O_NOATIME (positioned reads leave its offset alone):
    // a reopen and a close less per written file.
    const own = loadNativeFuse().addon?.noAtime?.(fd) === 0 ? fd : reopenNoAtime(fd);
    try {
      const before = fstatSync(own, { bigint: true });
      if (before.isFile() && before.size > maxSize) return undefined;
      return this.hashFd(own, blockSize, before);
    } finally {
      if (own !== fd) closeSync(own);
    }
  }

  private hashFd(fd: number, blockSize: number, before = fstatSync(fd, { bigint: true })): FileHash {
    if (!before.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
    if (this.hasher?.blockSize !== blockSize) {
      this.hasher = new BlockHasher(blockSize);
      this.buf = Buffer.allocUnsafe(blockSize);
    }
    const h = this.hasher;
    h.reset();
    let pos = 0;
    for (;;) {
      const n = readSync(fd, this.buf, 0, blockSize, pos);
      if (n === 0) break;
      h.update(this.buf.subarray(0, n));
      pos += n;
      // A short read at the size fstat gave is the end (a file that grew meanwhile fails the check below).
      if (n < blockSize && BigInt(pos) >= before.size) break;
    }
    const after = fstatSync(fd, { bigint: true });
    const r = h.digest();
    const changed = after.size !== before.size || after.mtimeNs !== before.mtimeNs || BigInt(r.size) !== after.size;
    return { ...r, ino: after.ino, mtimeNs: after.mtimeNs, changed };
  }
}

/**
 * O_NOATIME: hashing after close must not change the times the writer set (EPERM when
 * neither owner nor root: then plain). O_NONBLOCK: a FIFO put in a file's place since it was
 * listed is opened at once (and refused as no regular file) instead of waiting for a writer;
 * a regular file's reads ignore it.
 */
function openNoAtime(path: string): number {
  const flags = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
  try {
    return openSync(path, flags | (C.O_NOATIME ?? 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    return openSync(path, flags);
  }
}

/** The same, for the inode behind an open descriptor (its /proc/self/fd link is followed on purpose: it is that inode). */
function reopenNoAtime(fd: number): number {
  const path = `/proc/self/fd/${fd}`;
  try {
    return openSync(path, C.O_RDONLY | (C.O_NOATIME ?? 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    return openSync(path, C.O_RDONLY);
  }
}
