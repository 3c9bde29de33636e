import type { Entry } from '../../index/entries';
import type { Attr } from './types';
import type { DiskStat } from './disk-stats';
import type { LiveAttr } from './live-sizes';

/** Inode numbers of local non-directories (one per disk inode, so hard links share it), above every entry id. */
const LINKED_INO_BASE = 2 ** 50;

/** Inode numbers: small fixed ones for virtual nodes, entry id + ENTRY_INO_BASE for indexed entries. */
export const INO_ROOT = 1;
export const INO_VDFS = 2;
export const INO_BY_HASH = 3;
export const ENTRY_INO_BASE = 1024;

const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;
const started = Date.now();

export function dirAttr(ino: number, mtimeMs = started, readonly = true, mode = 0o755): Attr {
  return {
    ino,
    type: 'dir',
    mode,
    size: 0,
    mtimeMs,
    ctimeMs: mtimeMs,
    atimeMs: mtimeMs,
    nlink: 2,
    uid,
    gid,
    hash: null,
    etag: `"d${ino}-${Math.floor(mtimeMs)}"`,
    readonly,
  };
}

/**
 * Strong validator from the entry and its source's version token (inode+size+mtime locally,
 * ETag/revision remotely), which changes whenever the content may have. Not the content hash:
 * that is computed after close, and an ETag that flipped when it arrived would make clients
 * replacing files with If-Match (gvfs, davfs2) fail with 412 although nothing changed.
 */
export function etagOf(e: Pick<Entry, 'id' | 'version' | 'size' | 'mtimeSec' | 'mtimeNsec'>): string {
  const v = (e.version ?? `${e.size}-${e.mtimeSec}.${e.mtimeNsec}`).replace(/[^\w.:-]/g, '_');
  return `"v${e.id}-${v}"`;
}

/** The disk inode of a local entry: from its last lstat, else from its version token (`ino:size:mtime`). */
function diskInoOf(e: Entry, disk?: DiskStat): bigint | undefined {
  if (disk) return disk.ino;
  const m = e.version ? /^(\d+):\d+:\d+$/.exec(e.version) : null;
  return m ? BigInt(m[1]) : undefined;
}

/**
 * Attr of an indexed entry, with live size/mtime of a file being written when given. `local`:
 * the entry is on a local disk, so anything but a directory shows the disk's inode (above every
 * entry id), whatever its link count: an inode number that changed when a second name came or
 * went would make tar, rsync -H and du see another file.
 */
export function entryAttr(e: Entry, readonly: boolean, live?: LiveAttr, disk?: DiskStat, local = false): Attr {
  const mtimeMs = live?.mtimeMs ?? e.mtimeSec * 1000 + e.mtimeNsec / 1e6;
  const size = live?.size ?? e.size;
  const a = indexAttr(e, readonly, mtimeMs, size, live !== undefined);
  const ino = local && e.type !== 'dir' ? diskInoOf(e, disk) : undefined;
  if (ino !== undefined) a.ino = LINKED_INO_BASE + Number(ino % BigInt(LINKED_INO_BASE));
  if (!disk) {
    // The exact mtime (the float above cannot hold every one): the index's, or one set on a file
    // still open for writing (touch right after a write); shown for all three.
    const m = live ? live.mtimeNs : BigInt(e.mtimeSec) * 1_000_000_000n + BigInt(e.mtimeNsec);
    // A writer's descriptor said its atime and ctime too: those, not the mtime (which utimens
    // may have set anywhere), or they jumped once the disk's lstat was known.
    if (m !== undefined) a.ns = { atime: live?.atimeNs ?? m, mtime: m, ctime: live?.ctimeNs ?? m };
    return a;
  }
  const mtime = live ? (live.mtimeNs ?? BigInt(Math.round(live.mtimeMs * 1e6))) : BigInt(e.mtimeSec) * 1_000_000_000n + BigInt(e.mtimeNsec);
  // While written, the kernel's mtime runs ahead of the last lstat: ctime is never older. The
  // descriptor's own ctime when its fstat is what `live` says (an mtime set far ahead by utimens
  // is no ctime).
  const ctime = live?.ctimeNs ?? (live && mtime > disk.ctimeNs ? mtime : disk.ctimeNs);
  a.ns = { atime: disk.atimeNs, mtime, ctime };
  a.mode = live?.mode ?? e.mode & 0o7777; // a disk's mode 000 is 000, not "unknown"
  a.atimeMs = Number(disk.atimeNs / 1000n) / 1000;
  a.ctimeMs = Number(ctime / 1000n) / 1000;
  a.uid = disk.uid;
  a.gid = disk.gid;
  a.nlink = disk.nlink;
  if (e.type === 'dir') a.size = disk.size;
  if (!local && disk.nlink > 1 && e.type !== 'dir') a.ino = LINKED_INO_BASE + Number(disk.ino % BigInt(LINKED_INO_BASE));
  return a;
}

function indexAttr(e: Entry, readonly: boolean, mtimeMs: number, size: number, live: boolean): Attr {
  // Never file-type bits from the index: the front ends add those from `type`.
  const mode = e.mode & 0o7777 || (e.type === 'dir' ? 0o755 : e.type === 'symlink' ? 0o777 : 0o644);
  return {
    ino: e.id + ENTRY_INO_BASE,
    type: e.type,
    mode,
    size: e.type === 'symlink' ? Buffer.byteLength(e.target ?? '') : size,
    mtimeMs,
    ctimeMs: mtimeMs,
    atimeMs: mtimeMs,
    nlink: e.type === 'dir' ? 2 : 1,
    ...(e.rdev !== null && e.rdev !== undefined ? { rdev: e.rdev } : {}),
    uid,
    gid,
    hash: live ? null : e.hash,
    etag: live ? `"w${e.id}-${size}-${Math.floor(mtimeMs)}"` : etagOf(e),
    readonly,
  };
}
