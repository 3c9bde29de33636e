import { constants as C, fstatSync } from 'node:fs';
import { FsError } from '../../core/fs-error';
import type { TimeSet } from '../vfs/types';
import type { FuseNode } from './inode-table';
import { openFlags } from './open-flags';
import { FATTR, FOPEN, u64, type InHeader } from './proto';
import { dropBlockHandle, registerBlocks } from './block-files';
import { B, attrReply, type OpContext } from './op-context';

/*
 * Open files: the page-cache decision at OPEN, the descriptors the addon reads and writes
 * natively (verified block files: block-files.ts), kernel passthrough, and SETATTR (through an open writer's
 * descriptor when there is one).
 */

/** Opens and decides on the page cache: kept when the content did not change since the last open. */
export async function openFile(ctx: OpContext, node: FuseNode, path: string, flags: number): Promise<[number, number, number]> {
  // kernel: the kernel follows its own writes through this handle (no invalidation sweep for them).
  const o = { ...openFlags(flags), kernel: true };
  const seq = ctx.changeSeq;
  const fh = await ctx.vfs.open(path, o);
  let keep = 0;
  try {
    const a = await ctx.vfs.getattr(path);
    // An open file is checked by the invalidator from now on even when the kernel only got it
    // from a listing (no LOOKUP): a change on the disk then drops its cached pages at once.
    node.last = a;
    if (!o.write && !o.truncate && node.openEtag === a.etag) keep = FOPEN.KEEP_CACHE;
    node.openEtag = o.write || o.truncate ? undefined : a.etag;
  } catch {
    /* attributes gone meanwhile: no cache */
  }
  const fd = ctx.vfs.nativeReadFd(fh);
  // A local file: its owner and mode are changed through this descriptor too (rsync's fchmod of a read-only open).
  if (fd !== undefined) ctx.registerFd(fh, fd, false, !o.write && ctx.vfs.nativeMeta(fh) ? node.id : undefined);
  else registerBlocks(ctx, fh);
  const direct = directWrites(flags, registerWriter(ctx, fh, node));
  const pt = passthroughOpen(ctx, fh, node, fd);
  if (pt) return [fh, pt.flags, pt.backing];
  if (node.backing) {
    await ctx.vfs.release(fh).catch(() => undefined);
    ctx.unregisterFd(fh);
    dropBlockHandle(ctx, fh);
    if (ctx.writers.get(node.id) === fh) ctx.writers.delete(node.id);
    throw busy(path);
  }
  noteCached(ctx, fh, node, seq);
  return [fh, direct || keep, 0];
}

/** Device and inode of a descriptor's file ('' when fstat fails: never equal to a real one). */
function fileId(fd: number): string {
  try {
    const st = fstatSync(fd, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return '';
  }
}

/** A writer while the node's backing file is read-only (a running program, a read-only disk). */
export function busy(path: string): FsError {
  return new FsError('EBUSY', `${path} is open for reading through kernel passthrough and cannot be written meanwhile; close it first (or mount with --no-passthrough)`);
}

/**
 * Kernel passthrough of a new handle, when the connection has it: the kernel then reads (and
 * writes) the local file itself; the registered descriptor stays as the fallback. `readFd`: the
 * handle's descriptor when open read-only; a local file open for writing passes through too
 * (ctx.vfs.passthroughWriteFd), sharing the node's backing file when that one is writable. Only
 * while no handle of the node is open in cached mode (the kernel allows one io mode per inode).
 * Returns the backing id and open flags, or undefined to open the handle cached. When the node's
 * backing file is another file than this handle's (the name was replaced on the disk while an
 * older open holds the old file), the kernel still wants that backing id for every open of the
 * node: the handle then gets it with FOPEN_DIRECT_IO, so its reads and writes come to us (its
 * registered descriptor, the new file) and only an mmap would see the old file.
 */
export function passthroughOpen(ctx: OpContext, fh: number, node: FuseNode, readFd: number | undefined): { backing: number; flags: number } | undefined {
  if (node.cachedOpens) return undefined;
  const fd = readFd ?? ctx.vfs.passthroughWriteFd(fh);
  if (fd === undefined) return undefined;
  if (node.backing && node.backing.file !== fileId(fd)) {
    node.backing.opens++;
    ctx.openFiles.set(fh, { node, passthrough: true });
    return { backing: node.backing.id, flags: FOPEN.PASSTHROUGH | FOPEN.DIRECT_IO };
  }
  if (!node.backing) {
    const b = ctx.openBacking(fd);
    if (b) node.backing = { ...b, opens: 0, file: fileId(fd) };
  }
  if (!node.backing || (readFd === undefined && !node.backing.writable)) return undefined;
  // The daemon sees no WRITE of this handle: its flushes and close always refresh the index.
  if (readFd === undefined) ctx.vfs.passthroughWriting(fh);
  node.backing.opens++;
  ctx.openFiles.set(fh, { node, passthrough: true });
  return { backing: node.backing.id, flags: FOPEN.PASSTHROUGH };
}

/** Writes of a handle open for writing at explicit offsets go straight to its file (pwrite in the addon). */
export function registerWriter(ctx: OpContext, fh: number, node: FuseNode): boolean {
  const wfd = ctx.vfs.nativeWriteFd(fh);
  if (wfd === undefined) return false;
  // A local file: its owner, mode, times and attributes are answered through this descriptor too.
  ctx.registerFd(fh, wfd, true, ctx.vfs.nativeMeta(fh) ? node.id : undefined);
  ctx.writers.set(node.id, fh);
  return true;
}

/**
 * FOPEN_DIRECT_IO for a write-only open whose writes the addon answers with `pwrite`: the
 * kernel then hands our reader the caller's pages instead of first copying them into its page
 * cache (one copy per byte less: 1 GiB `dd conv=fsync`, medians 1.1 → 1.5 GB/s here). It invalidates cached pages
 * of the range before each such write, so other readers stay coherent; and a write-only
 * descriptor cannot be mmapped. Setuid/setgid bits the kernel would clear on a cached write are
 * cleared by the addon (FUSE_WRITE_KILL_SUIDGID).
 */
export function directWrites(flags: number, nativeWriter: boolean): number {
  return nativeWriter && (flags & 3) === C.O_WRONLY ? FOPEN.DIRECT_IO : 0;
}

/** `seq`: the count of index changes before the open (see settled). */
export function noteCached(ctx: OpContext, fh: number, node: FuseNode, seq?: number): void {
  node.cachedOpens = (node.cachedOpens ?? 0) + 1;
  ctx.openFiles.set(fh, { node, passthrough: false, seq });
}

/**
 * The node a handle writes natively (a local file open for writing), before releaseOpen forgets
 * it, and the count of index changes when it was opened.
 */
export function writerNode(ctx: OpContext, fh: number): { node: FuseNode; seq?: number } | undefined {
  const open = ctx.openFiles.get(fh);
  return open && ctx.writers.get(open.node.id) === fh ? { node: open.node, seq: open.seq } : undefined;
}

/**
 * After a kernel writer's release: the node's last attributes become what the index now says.
 * Its commits started no invalidation sweep (the kernel made the change itself), so without
 * this the next sweep would see them differ and drop the kernel's pages of a file it wrote.
 * Only when nothing else changed the index since the open (changeSeq): then a sweep is due,
 * and it must still compare against what the kernel was told. Never throws.
 */
export async function settled(ctx: OpContext, w: { node: FuseNode; seq?: number }): Promise<void> {
  const { node } = w;
  if (w.seq !== ctx.changeSeq || !node.parent || node.unlinked) return;
  try {
    node.last = await ctx.vfs.getattr(ctx.inodes.pathOf(node));
  } catch {
    /* gone or renamed meanwhile: left to the invalidator */
  }
}

/** Forgets the io mode of a released handle; the node's backing file goes with its last passthrough open. */
export function releaseOpen(ctx: OpContext, fh: number): void {
  const open = ctx.openFiles.get(fh);
  if (!open) return;
  ctx.openFiles.delete(fh);
  const { node } = open;
  if (ctx.writers.get(node.id) === fh) ctx.writers.delete(node.id);
  if (!open.passthrough) node.cachedOpens = Math.max(0, (node.cachedOpens ?? 1) - 1);
  else if (node.backing && --node.backing.opens <= 0) {
    ctx.closeBacking(node.backing.id);
    node.backing = undefined;
  }
}

/** utimensat's UTIME_NOW / UTIME_OMIT / exact nanoseconds of a SETATTR, passed on as they came. */
function setattrTimes(req: Buffer, valid: number): { atime: TimeSet; mtime: TimeSet } {
  const time = (now: number, set: number, secOff: number, nsecOff: number): TimeSet =>
    valid & now ? 'now' : valid & set ? { sec: Number(req.readBigInt64LE(secOff)), nsec: req.readUInt32LE(nsecOff) } : 'omit';
  return { atime: time(FATTR.ATIME_NOW, FATTR.ATIME, B + 32, B + 56), mtime: time(FATTR.MTIME_NOW, FATTR.MTIME, B + 40, B + 60) };
}

const TIMES = FATTR.ATIME | FATTR.MTIME | FATTR.ATIME_NOW | FATTR.MTIME_NOW;

/**
 * fchown/fchmod/futimens of a file this node has open for writing (`tar x` sends all three per
 * file): through that handle's descriptor, with no path walk and no index commit (the handle's
 * flush or close commits). False when there is no such handle or it is not a local file.
 */
function setattrThroughHandle(ctx: OpContext, nodeid: number, req: Buffer, valid: number): boolean {
  const fh = ctx.writers.get(nodeid);
  if (fh === undefined || valid & FATTR.SIZE) return false;
  return ctx.vfs.setattrOpen(fh, {
    uid: valid & FATTR.UID ? req.readUInt32LE(B + 76) : -1,
    gid: valid & FATTR.GID ? req.readUInt32LE(B + 80) : -1,
    mode: valid & FATTR.MODE ? req.readUInt32LE(B + 68) & 0o7777 : undefined,
    ...(valid & TIMES ? setattrTimes(req, valid) : { atime: 'omit', mtime: 'omit' }),
  });
}

export async function setattr(ctx: OpContext, h: InHeader, req: Buffer): Promise<Buffer> {
  const node = ctx.inodes.get(h.nodeid);
  const path = ctx.inodes.pathOf(node);
  const valid = req.readUInt32LE(B);
  const fh = u64(req, B + 8);
  if (setattrThroughHandle(ctx, h.nodeid, req, valid)) return attrReply(ctx, req, await ctx.vfs.getattr(path));
  // chown first: it clears setuid/setgid on files, and a mode sent with it is the one wanted after.
  if (valid & (FATTR.UID | FATTR.GID)) {
    await ctx.vfs.chown(path, valid & FATTR.UID ? req.readUInt32LE(B + 76) : -1, valid & FATTR.GID ? req.readUInt32LE(B + 80) : -1, true);
  }
  if (valid & FATTR.MODE) await ctx.vfs.chmod(path, req.readUInt32LE(B + 68) & 0o7777, true);
  if (valid & FATTR.SIZE) {
    const size = u64(req, B + 16);
    if (valid & FATTR.FH) await ctx.vfs.ftruncate(fh, size);
    else await ctx.vfs.truncate(path, size, true);
  }
  if (valid & TIMES) {
    const { atime, mtime } = setattrTimes(req, valid);
    await ctx.vfs.setTimes(path, atime, mtime, true);
  }
  // The kernel takes these attributes from the reply, and the changes started no sweep (kernel):
  // the invalidator compares with them from now on, or its next sweep would drop what is right.
  const a = await ctx.vfs.getattr(path);
  if (node.last) node.last = a;
  return attrReply(ctx, req, a);
}
