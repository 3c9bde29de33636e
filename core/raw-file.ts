import { close, closeSync, fdatasync, fstat, fstatSync, ftruncate, open, openSync, statfsSync, write, type BigIntStats, type Stats } from 'node:fs';

/**
 * Filesystems on this machine's own disks (statfs f_type), where open, fstat and close answer
 * in microseconds from memory: ext2/3/4, xfs, btrfs, tmpfs, f2fs, zfs, overlayfs.
 */
const LOCAL_DISK_TYPES = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010, 0x2fc12fc1, 0x794c7630]);
const localDisk = new Map<string, boolean>();

/**
 * Whether the filesystem holding `root` is one of the above (cached per root for the process).
 * Anything else (NFS, SMB, a FUSE mount such as sshfs, an unknown type, a root that cannot be
 * asked) is not: there an open or a close may wait for a server. Never throws.
 */
export function onLocalDisk(root: string): boolean {
  let fast = localDisk.get(root);
  if (fast === undefined) {
    try {
      fast = LOCAL_DISK_TYPES.has(Number(statfsSync(root).type));
    } catch {
      return false; // not cached: the root may come back (a disk plugged in again)
    }
    localDisk.set(root, fast);
  }
  return fast;
}

/**
 * An open descriptor of a local file with the few FileHandle methods the VFS uses. Unlike a
 * FileHandle, it opens, fstats and closes on the JS thread when the file is on a local disk
 * (`sync`), where each takes microseconds and a thread-pool round trip cost more than the call
 * (two per file of a `tar x` or a read); elsewhere those stay on the pool. Reads and writes
 * always go to the pool. Not closed on garbage collection: its owner closes it.
 */
export class RawFile {
  private closed = false;

  private constructor(
    readonly fd: number,
    private readonly sync: boolean,
  ) {}

  /** open(2) of `path` (already safe to open: see core/beneath.ts). Throws the system error. */
  static async open(path: string, flags: number, mode: number, sync: boolean): Promise<RawFile> {
    if (sync) return new RawFile(openSync(path, flags, mode), true);
    const fd = await new Promise<number>((resolve, reject) => open(path, flags, mode, (err, n) => (err ? reject(err) : resolve(n))));
    return new RawFile(fd, false);
  }

  write(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number }> {
    return new Promise((resolve, reject) => write(this.fd, buffer, offset, length, position, (err, bytesWritten) => (err ? reject(err) : resolve({ bytesWritten }))));
  }

  stat(): Promise<Stats>;
  stat(opts: { bigint: true }): Promise<BigIntStats>;
  async stat(opts?: { bigint: true }): Promise<Stats | BigIntStats> {
    if (this.sync) return opts ? fstatSync(this.fd, opts) : fstatSync(this.fd);
    return new Promise((resolve, reject) => fstat(this.fd, opts ?? {}, (err, st) => (err ? reject(err) : resolve(st))));
  }

  datasync(): Promise<void> {
    return new Promise((resolve, reject) => fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
  }

  truncate(len: number): Promise<void> {
    return new Promise((resolve, reject) => ftruncate(this.fd, len, (err) => (err ? reject(err) : resolve())));
  }

  /** Closes once; later calls resolve at once (the descriptor number may belong to another file by then). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sync) return closeSync(this.fd);
    return new Promise((resolve, reject) => close(this.fd, (err) => (err ? reject(err) : resolve())));
  }
}
