/**
 * The kernel FUSE protocol (linux/fuse.h, 7.38 layout) as vdfs speaks it: opcodes, flags,
 * and encoders for the reply structures. Little-endian, as on every Linux vdfs runs on.
 */
import { TYPE_MODE_BITS } from '../../core/provider';
import type { Attr, NotedStat } from '../vfs/types';

export const OP = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
} as const;

/** INIT flags (fuse_init_in/out.flags; flags2 bits are these shifted by 32). */
export const INIT = {
  ASYNC_READ: 1 << 0,
  ATOMIC_O_TRUNC: 1 << 3,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  INIT_EXT: 1 << 30,
} as const;

export const FOPEN = { DIRECT_IO: 1, KEEP_CACHE: 2, CACHE_DIR: 8, PASSTHROUGH: 128 } as const;
/** flags2 bits of INIT (7.36+), i.e. the 64-bit flags shifted right by 32. */
export const INIT2 = { PASSTHROUGH: 1 << 5, OVER_IO_URING: 1 << 9 } as const;

/** SETATTR valid bits. */
export const FATTR = {
  MODE: 1,
  UID: 2,
  GID: 4,
  SIZE: 8,
  ATIME: 16,
  MTIME: 32,
  FH: 64,
  ATIME_NOW: 128,
  MTIME_NOW: 256,
  CTIME: 1024,
} as const;

export const NOTIFY = { INVAL_INODE: 2, INVAL_ENTRY: 3 } as const;
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const GETATTR_FH = 1;

export const IN_HEADER = 40;
export const OUT_HEADER = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT = 40 + ATTR_SIZE;
export const ATTR_OUT = 16 + ATTR_SIZE;
export const DIRENT_HEADER = 24;

/** DT_* of each entry type (dirent d_type). */
const DT = { file: 8, dir: 4, symlink: 10, fifo: 1, socket: 12, chardev: 2, blockdev: 6 } as const;
const TWO32 = 2 ** 32;

/** The fields of fuse_in_header vdfs uses. */
export interface InHeader {
  len: number;
  opcode: number;
  /** Key of the request (u64 as a number: the kernel counts up from 0, never near 2^53). */
  unique: number;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export function u64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * TWO32;
}

export function w64(buf: Buffer, off: number, n: number): void {
  const v = n < 0 ? 0 : n;
  buf.writeUInt32LE((v % TWO32) >>> 0, off);
  buf.writeUInt32LE(Math.floor(v / TWO32) >>> 0, off + 4);
}

export function parseHeader(buf: Buffer): InHeader {
  return {
    len: buf.readUInt32LE(0),
    opcode: buf.readUInt32LE(4),
    unique: u64(buf, 8),
    nodeid: u64(buf, 16),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
  };
}

/** A NUL-terminated name at `off`; returns it and the offset just past the NUL. */
export function cstr(buf: Buffer, off: number): [string, number] {
  let end = buf.indexOf(0, off);
  if (end < 0) end = buf.length;
  return [buf.toString('utf8', off, end), end + 1];
}

/** A reply buffer: out header (len, error 0, unique copied from the request) + `size` payload bytes. */
export function replyBuffer(req: Buffer, size: number): Buffer {
  const out = Buffer.allocUnsafe(OUT_HEADER + size);
  out.writeUInt32LE(OUT_HEADER + size, 0);
  out.writeInt32LE(0, 4);
  req.copy(out, 8, 8, 16);
  return out;
}

export function errorReply(req: Buffer, errno: number): Buffer {
  const out = replyBuffer(req, 0);
  out.writeInt32LE(-Math.abs(errno), 4);
  return out;
}

function writeNs(buf: Buffer, secOff: number, nsecOff: number, ns: bigint): void {
  const sec = ns >= 0n ? ns / 1_000_000_000n : (ns - 999_999_999n) / 1_000_000_000n;
  buf.writeBigInt64LE(sec, secOff);
  buf.writeUInt32LE(Number(ns - sec * 1_000_000_000n), nsecOff);
}

function writeTime(buf: Buffer, secOff: number, nsecOff: number, ms: number): void {
  const sec = Math.floor(ms / 1000);
  const nsec = Math.min(999_999_999, Math.max(0, Math.round((ms - sec * 1000) * 1e6)));
  w64(buf, secOff, sec);
  buf.writeUInt32LE(nsec, nsecOff);
}

export function fileMode(a: Attr): number {
  return TYPE_MODE_BITS[a.type] | (a.mode & 0o7777);
}

export function direntType(a: Attr): number {
  return DT[a.type];
}

/** fuse_attr at `off`. */
export function writeAttr(buf: Buffer, off: number, a: Attr): void {
  w64(buf, off, a.ino);
  w64(buf, off + 8, a.size);
  w64(buf, off + 16, Math.ceil(a.size / 512));
  if (a.ns) {
    writeNs(buf, off + 24, off + 48, a.ns.atime);
    writeNs(buf, off + 32, off + 52, a.ns.mtime);
    writeNs(buf, off + 40, off + 56, a.ns.ctime);
  } else {
    writeTime(buf, off + 24, off + 48, a.atimeMs);
    writeTime(buf, off + 32, off + 52, a.mtimeMs);
    writeTime(buf, off + 40, off + 56, a.ctimeMs);
  }
  buf.writeUInt32LE(fileMode(a), off + 60);
  buf.writeUInt32LE(a.nlink, off + 64);
  buf.writeUInt32LE(a.uid >>> 0, off + 68);
  buf.writeUInt32LE(a.gid >>> 0, off + 72);
  // Linux's 32-bit device encoding (new_encode_dev), which glibc's st_rdev is for every real device.
  buf.writeUInt32LE((a.rdev ?? 0) >>> 0, off + 76);
  buf.writeUInt32LE(128 * 1024, off + 80);
  buf.writeUInt32LE(0, off + 84);
}

/** A timeout in seconds as (u64 seconds, u32 nanoseconds) at secOff/nsecOff. */
export function writeValid(buf: Buffer, secOff: number, nsecOff: number, seconds: number): void {
  const s = Math.floor(seconds);
  w64(buf, secOff, s);
  buf.writeUInt32LE(Math.round((seconds - s) * 1e9), nsecOff);
}

/** fuse_entry_out at `off`; nodeid 0 is a negative entry (the name is known not to exist). */
export function writeEntry(buf: Buffer, off: number, nodeid: number, generation: number, a: Attr | null, entryTtl: number, attrTtl: number): void {
  w64(buf, off, nodeid);
  w64(buf, off + 8, generation);
  writeValid(buf, off + 16, off + 32, entryTtl);
  writeValid(buf, off + 24, off + 36, attrTtl);
  if (a) writeAttr(buf, off + 40, a);
  else buf.fill(0, off + 40, off + 40 + ATTR_SIZE);
}

/** Size of a dirent (or the dirent part of a direntplus) with this name, padded to 8 bytes. */
export function direntSize(nameBytes: number): number {
  return (DIRENT_HEADER + nameBytes + 7) & ~7;
}

/** fuse_dirent at `off`; returns its padded size. */
export function writeDirent(buf: Buffer, off: number, ino: number, nextOff: number, name: Buffer, type: number): number {
  w64(buf, off, ino);
  w64(buf, off + 8, nextOff);
  buf.writeUInt32LE(name.length, off + 16);
  buf.writeUInt32LE(type, off + 20);
  name.copy(buf, off + DIRENT_HEADER);
  const size = direntSize(name.length);
  buf.fill(0, off + DIRENT_HEADER + name.length, off + size);
  return size;
}

/** A kernel notification: out header with unique 0 and the notify code in the error field. */
export function notification(code: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(OUT_HEADER + payload.length);
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(code, 4);
  w64(out, 8, 0);
  payload.copy(out, OUT_HEADER);
  return out;
}

/** Where the addon's SETATTR note puts its fstat: after the header and the fuse_setattr_in. */
const NOTED_STAT = IN_HEADER + 88;

/**
 * The fstat the addon appended to a SETATTR note (struct vdfs_noted_stat in
 * native/native-meta.h); undefined when it is missing or the fstat failed.
 */
export function notedStat(req: Buffer): NotedStat | undefined {
  if (req.length < NOTED_STAT + 80 || req.readUInt32LE(NOTED_STAT + 76) !== 1) return undefined;
  const ns = (secAt: number, nsecAt: number) => req.readBigInt64LE(NOTED_STAT + secAt) * 1_000_000_000n + BigInt(req.readUInt32LE(NOTED_STAT + nsecAt));
  return {
    dev: req.readBigUInt64LE(NOTED_STAT),
    ino: req.readBigUInt64LE(NOTED_STAT + 8),
    size: req.readBigUInt64LE(NOTED_STAT + 16),
    atimeNs: ns(24, 48),
    mtimeNs: ns(32, 52),
    ctimeNs: ns(40, 56),
    mode: BigInt(req.readUInt32LE(NOTED_STAT + 60)),
    uid: BigInt(req.readUInt32LE(NOTED_STAT + 64)),
    gid: BigInt(req.readUInt32LE(NOTED_STAT + 68)),
    nlink: BigInt(req.readUInt32LE(NOTED_STAT + 72)),
  };
}
