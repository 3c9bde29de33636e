import { FsError } from '../../core/fs-error';
import { splitPath } from '../../core/paths';
import type { Attr, Caller, DirEntry, KernelVfs, TimeSet } from '../vfs/types';
import { ROOT_ID, type FuseNode, type InodeTable } from './inode-table';
import { openFlags } from './open-flags';
import { readReplyBuffer } from './reply-pool';
import {
  ATTR_OUT,
  ENTRY_OUT,
  FATTR,
  FOPEN,
  IN_HEADER,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  cstr,
  direntSize,
  errorReply,
  direntType,
  replyBuffer,
  u64,
  w64,
  writeAttr,
  writeDirent,
  writeEntry,
  writeValid,
  type InHeader,
} from './proto';

/** What the request handlers share: the VFS, the node table, cache times and open directories. */
export interface OpContext {
  vfs: KernelVfs;
  inodes: InodeTable;
  entryTtl: number;
  attrTtl: number;
  negativeTtl: number;
  /** Open directory handles -> the listing their first READDIR(PLUS) took (null until then), served by offsets. */
  dirs: Map<number, DirEntry[] | null>;
  nextDir: number;
  /** Counts the index's changes (Vfs.onChange): a directory listed before the last change is listed again. */
  changeSeq: number;
  /** A local handle's descriptor may be read (and written, when `writable`) natively from now on. */
  registerFd(fh: number, fd: number, writable: boolean): void;
  unregisterFd(fh: number): void;
  /** READs of content read through the block cache that fall inside registered (verified) block files are answered natively. */
  registerBlocks(fh: number, blockSize: number, size: number): void;
  setBlockFile(fh: number, index: number, path: string | null): void;
  unregisterBlocks(fh: number): void;
  /** Handles with natively read blocks: which blocks are registered, and where to find more. */
  blockHandles: Map<number, { blocks: NonNullable<ReturnType<KernelVfs['nativeBlocks']>>; known: Map<number, string> }>;
  /** Registered block files -> the handles (and block numbers) reading them natively, to unregister before eviction. */
  blockUsers: Map<string, Map<number, number>>;
  /** A new backing id for kernel passthrough of this read-only descriptor, when the connection has it. */
  openBacking(fd: number): number | undefined;
  closeBacking(id: number): void;
  /** The node of each open file handle, with the io mode it was opened in. */
  openFiles: Map<number, { node: FuseNode; passthrough: boolean }>;
  /** A handle open for writing by node id (the latest), for SETATTR through its descriptor. */
  writers: Map<number, number>;
  /** Diagnostics of the binding (node count, requests answered natively), shown as user.vdfs.fuse on the root. */
  stats(): Record<string, number | string>;
}

/** Answers one request: a whole reply buffer, or null when the kernel expects no reply. Throws FsError. */
export type Handler = (ctx: OpContext, h: InHeader, req: Buffer) => Promise<Buffer | null>;

const B = IN_HEADER;
const ERANGE = 34;
const XATTR_FUSE = 'user.vdfs.fuse';
const ENXIO = 6;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
/** Bytes per COPY_FILE_RANGE request (the reply counts in 32 bits; callers loop). */
const COPY_MAX = 64 << 20;
/** A kept listing must outlive the walk that uses it: it is reused only while this much younger than the timeouts. */
const LISTING_MARGIN_MS = 1000;

/** The attribute inode of a file with several names (see InodeTable.lookup), else undefined. */
function linkedIno(a: Attr): number | undefined {
  return a.nlink > 1 && a.type !== 'dir' ? a.ino : undefined;
}

function entryReply(ctx: OpContext, req: Buffer, node: FuseNode, a: Attr, extra = 0): Buffer {
  const out = replyBuffer(req, ENTRY_OUT + extra);
  writeEntry(out, 16, node.id, ctx.inodes.generation, a, ctx.entryTtl, ctx.attrTtl);
  return out;
}

function attrReply(ctx: OpContext, req: Buffer, a: Attr): Buffer {
  const out = replyBuffer(req, ATTR_OUT);
  writeValid(out, 16, 24, ctx.attrTtl);
  out.writeUInt32LE(0, 28);
  writeAttr(out, 32, a);
  return out;
}

function empty(req: Buffer): Buffer {
  return replyBuffer(req, 0);
}

/** Looks a new name up after creating it, adding the kernel's reference. */
async function created(ctx: OpContext, req: Buffer, parent: FuseNode, name: string, extra = 0): Promise<[Buffer, FuseNode]> {
  const a = await ctx.vfs.getattr(ctx.inodes.childPath(parent, name));
  const node = ctx.inodes.lookup(parent, name, linkedIno(a));
  node.last = a;
  return [entryReply(ctx, req, node, a, extra), node];
}

function openReply(req: Buffer, fh: number, openFlagsOut: number, backingId = 0): Buffer {
  const out = replyBuffer(req, 16);
  w64(out, 16, fh);
  out.writeUInt32LE(openFlagsOut, 24);
  out.writeInt32LE(backingId, 28);
  return out;
}

/** Opens and decides on the page cache: kept when the content did not change since the last open. */
async function openFile(ctx: OpContext, node: FuseNode, path: string, flags: number): Promise<[number, number, number]> {
  const o = openFlags(flags);
  const fh = await ctx.vfs.open(path, o);
  let keep = 0;
  try {
    const a = await ctx.vfs.getattr(path);
    if (!o.write && !o.truncate && node.openEtag === a.etag) keep = FOPEN.KEEP_CACHE;
    node.openEtag = o.write || o.truncate ? undefined : a.etag;
  } catch {
    /* attributes gone meanwhile: no cache */
  }
  const fd = ctx.vfs.nativeReadFd(fh);
  if (fd !== undefined) ctx.registerFd(fh, fd, false);
  else registerBlocks(ctx, fh);
  registerWriter(ctx, fh, node);
  // Passthrough: the kernel reads the local file itself (the registered descriptor stays as the
  // fallback). Only while no file of the node is open in cached mode, sharing one backing file.
  if (fd !== undefined && !node.cachedOpens) {
    if (!node.backing) {
      const id = ctx.openBacking(fd);
      if (id !== undefined) node.backing = { id, opens: 0 };
    }
    if (node.backing) {
      node.backing.opens++;
      ctx.openFiles.set(fh, { node, passthrough: true });
      return [fh, FOPEN.PASSTHROUGH, node.backing.id];
    }
  }
  if (node.backing) {
    await ctx.vfs.release(fh).catch(() => undefined);
    ctx.unregisterFd(fh);
    dropBlockHandle(ctx, fh);
    if (ctx.writers.get(node.id) === fh) ctx.writers.delete(node.id);
    throw new FsError('EBUSY', `${path} is open for reading through kernel passthrough; close it first (or mount with --no-passthrough)`);
  }
  noteCached(ctx, fh, node);
  return [fh, keep, 0];
}

/** Content read through the block cache: every block verified in the cache so far is read natively from its file. */
function registerBlocks(ctx: OpContext, fh: number): void {
  const blocks = ctx.vfs.nativeBlocks(fh);
  if (!blocks || blocks.blockSize <= 0) return;
  ctx.registerBlocks(fh, blocks.blockSize, blocks.size);
  ctx.blockHandles.set(fh, { blocks, known: new Map() });
  const n = Math.ceil(blocks.size / blocks.blockSize);
  for (let i = 0; i < n; i++) addBlockFile(ctx, fh, i);
}

function addBlockFile(ctx: OpContext, fh: number, i: number): void {
  const bh = ctx.blockHandles.get(fh);
  const file = bh && !bh.known.has(i) ? bh.blocks.file(i) : undefined;
  if (!bh || file === undefined) return;
  ctx.setBlockFile(fh, i, file);
  bh.known.set(i, file);
  let users = ctx.blockUsers.get(file);
  if (!users) ctx.blockUsers.set(file, (users = new Map()));
  users.set(fh, i);
}

/** A handle's block files are no longer read natively (at release). */
export function dropBlockHandle(ctx: OpContext, fh: number): void {
  const bh = ctx.blockHandles.get(fh);
  if (!bh) return;
  ctx.blockHandles.delete(fh);
  ctx.unregisterBlocks(fh);
  for (const file of bh.known.values()) {
    const users = ctx.blockUsers.get(file);
    users?.delete(fh);
    if (users?.size === 0) ctx.blockUsers.delete(file);
  }
}

/** The cache is about to delete a block file: every handle reading it natively stops first (waits for reads in flight). */
export function dropBlockFile(ctx: OpContext, file: string): void {
  const users = ctx.blockUsers.get(file);
  if (!users) return;
  ctx.blockUsers.delete(file);
  for (const [fh, i] of users) {
    ctx.setBlockFile(fh, i, null);
    ctx.blockHandles.get(fh)?.known.delete(i);
  }
}

/** After JS answered a READ of such a handle: the blocks it covered that are now verified files are read natively from now on. */
function registerReadBlocks(ctx: OpContext, fh: number, offset: number, length: number): void {
  const bh = ctx.blockHandles.get(fh);
  if (!bh || length <= 0) return;
  const bs = bh.blocks.blockSize;
  for (let i = Math.floor(offset / bs); i <= Math.floor((offset + length - 1) / bs); i++) addBlockFile(ctx, fh, i);
}

/** Writes of a handle open for writing at explicit offsets go straight to its file (pwrite in the addon). */
function registerWriter(ctx: OpContext, fh: number, node: FuseNode): void {
  const wfd = ctx.vfs.nativeWriteFd(fh);
  if (wfd === undefined) return;
  ctx.registerFd(fh, wfd, true);
  ctx.writers.set(node.id, fh);
}

function noteCached(ctx: OpContext, fh: number, node: FuseNode): void {
  node.cachedOpens = (node.cachedOpens ?? 0) + 1;
  ctx.openFiles.set(fh, { node, passthrough: false });
}

/** Forgets the io mode of a released handle; the node's backing file goes with its last passthrough open. */
function releaseOpen(ctx: OpContext, fh: number): void {
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

async function setattr(ctx: OpContext, h: InHeader, req: Buffer): Promise<Buffer> {
  const path = ctx.inodes.pathOf(ctx.inodes.get(h.nodeid));
  const valid = req.readUInt32LE(B);
  const fh = u64(req, B + 8);
  if (setattrThroughHandle(ctx, h.nodeid, req, valid)) return attrReply(ctx, req, await ctx.vfs.getattr(path));
  // chown first: it clears setuid/setgid on files, and a mode sent with it is the one wanted after.
  if (valid & (FATTR.UID | FATTR.GID)) {
    await ctx.vfs.chown(path, valid & FATTR.UID ? req.readUInt32LE(B + 76) : -1, valid & FATTR.GID ? req.readUInt32LE(B + 80) : -1);
  }
  if (valid & FATTR.MODE) await ctx.vfs.chmod(path, req.readUInt32LE(B + 68) & 0o7777);
  if (valid & FATTR.SIZE) {
    const size = u64(req, B + 16);
    if (valid & FATTR.FH) await ctx.vfs.ftruncate(fh, size);
    else await ctx.vfs.truncate(path, size);
  }
  if (valid & TIMES) {
    const { atime, mtime } = setattrTimes(req, valid);
    await ctx.vfs.setTimes(path, atime, mtime);
  }
  return attrReply(ctx, req, await ctx.vfs.getattr(path));
}

/** The caller of a request: what it creates belongs to them. */
const callerOf = (h: InHeader): Caller => ({ uid: h.uid, gid: h.gid });

async function readdirReply(ctx: OpContext, h: InHeader, req: Buffer, plus: boolean): Promise<Buffer> {
  const fh = u64(req, B);
  let list = ctx.dirs.get(fh);
  if (list === undefined) throw new FsError('EBADF', 'directory handle is not open');
  const start = u64(req, B + 8);
  const dir = ctx.inodes.get(h.nodeid);
  if (list === null || start === 0) {
    // Listed at the first READDIR, not at OPENDIR: when the kernel still has the listing
    // (FOPEN_CACHE_DIR, see OPENDIR) it opens and closes the folder without reading it.
    const seq = ctx.changeSeq;
    list = await ctx.vfs.readdir(ctx.inodes.pathOf(dir));
    ctx.dirs.set(fh, list);
    dir.listed = { at: Date.now(), seq };
  }
  const size = req.readUInt32LE(B + 16);
  const out = replyBuffer(req, size);
  let at = 16;
  for (let i = start; i < list.length; i++) {
    const { name, attr } = list[i];
    const nameBuf = Buffer.from(name);
    const need = direntSize(nameBuf.length) + (plus ? ENTRY_OUT : 0);
    if (at + need > out.length) break;
    if (plus) {
      const node = ctx.inodes.lookup(dir, name, linkedIno(attr));
      // Folders are few: the invalidator checks the ones it has attributes of against the index.
      if (attr.type === 'dir') node.last = attr;
      writeEntry(out, at, node.id, ctx.inodes.generation, attr, ctx.entryTtl, ctx.attrTtl);
      at += ENTRY_OUT;
    }
    at += writeDirent(out, at, attr.ino, i + 1, nameBuf, direntType(attr));
  }
  out.writeUInt32LE(at, 0);
  return out.subarray(0, at);
}

/**
 * OPENDIR: the kernel may keep the listing of this folder in its page cache (FOPEN_CACHE_DIR)
 * and reuse it at the next open (KEEP_CACHE) while the last listing is younger than the entry
 * and attribute timeouts (so its names and attributes are all still cached) and the index has
 * not changed since (any change: the listing is taken again). The kernel itself drops it when
 * the folder changes through the mount (its version moves) or its node is invalidated.
 */
async function opendir(ctx: OpContext, h: InHeader, req: Buffer): Promise<Buffer> {
  const dir = ctx.inodes.get(h.nodeid);
  const a = await ctx.vfs.getattr(ctx.inodes.pathOf(dir)); // also notices a commit by another process (changeSeq)
  if (a.type !== 'dir') throw new FsError('ENOTDIR', `${ctx.inodes.pathOf(dir)} is not a directory`);
  const fh = ctx.nextDir++;
  ctx.dirs.set(fh, null);
  const l = dir.listed;
  const fresh = l !== undefined && l.seq === ctx.changeSeq && Date.now() - l.at < 1000 * Math.min(ctx.entryTtl, ctx.attrTtl) - LISTING_MARGIN_MS;
  if (!fresh) dir.listed = undefined;
  return openReply(req, fh, FOPEN.CACHE_DIR | (fresh ? FOPEN.KEEP_CACHE : 0));
}

function xattrReply(req: Buffer, data: Buffer): Buffer {
  const size = req.readUInt32LE(B);
  if (size === 0) {
    const out = replyBuffer(req, 8);
    out.writeUInt32LE(data.length, 16);
    out.writeUInt32LE(0, 20);
    return out;
  }
  if (data.length > size) return errorReply(req, ERANGE);
  const out = replyBuffer(req, data.length);
  data.copy(out, 16);
  return out;
}

const nodePath = (ctx: OpContext, h: InHeader) => ctx.inodes.pathOf(ctx.inodes.get(h.nodeid));
const ENOSYS: Handler = async () => {
  throw new FsError('ENOSYS', 'not implemented');
};

/** The handlers by opcode. Anything missing is answered ENOSYS by the server. */
export const HANDLERS: Record<number, Handler> = {
  /* LOOKUP */ 1: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B);
    try {
      return (await created(ctx, req, parent, name))[0];
    } catch (err) {
      if (!(err instanceof FsError) || err.code !== 'ENOENT' || ctx.negativeTtl <= 0) throw err;
      const out = replyBuffer(req, ENTRY_OUT);
      writeEntry(out, 16, 0, 0, null, ctx.negativeTtl, 0);
      return out;
    }
  },
  /* GETATTR */ 3: async (ctx, h, req) => {
    const node = ctx.inodes.get(h.nodeid);
    try {
      node.last = await ctx.vfs.getattr(ctx.inodes.pathOf(node));
    } catch (err) {
      // fstat of a file unlinked while open: the last attributes, with no links.
      if (!(err instanceof FsError) || err.code !== 'ENOENT' || !node.unlinked || !node.last) throw err;
      node.last = { ...node.last, nlink: 0 };
    }
    return attrReply(ctx, req, node.last);
  },
  /* SETATTR */ 4: setattr,
  /* READLINK */ 5: async (ctx, h, req) => {
    const target = Buffer.from(await ctx.vfs.readlink(nodePath(ctx, h)));
    const out = replyBuffer(req, target.length);
    target.copy(out, 16);
    return out;
  },
  /* SYMLINK */ 6: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const [name, next] = cstr(req, B);
    const [target] = cstr(req, next);
    await ctx.vfs.symlink(target, ctx.inodes.childPath(parent, name), callerOf(h));
    return (await created(ctx, req, parent, name))[0];
  },
  /* MKNOD */ 8: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    // fuse_mknod_in: mode (type bits included), rdev (new_encode_dev), umask (already applied).
    const mode = req.readUInt32LE(B);
    const rdev = req.readUInt32LE(B + 4);
    const [name] = cstr(req, B + 16);
    await ctx.vfs.mknod(ctx.inodes.childPath(parent, name), mode, rdev, callerOf(h));
    return (await created(ctx, req, parent, name))[0];
  },
  /* MKDIR */ 9: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B + 8);
    await ctx.vfs.mkdir(ctx.inodes.childPath(parent, name), req.readUInt32LE(B) & 0o7777, callerOf(h));
    return (await created(ctx, req, parent, name))[0];
  },
  /* UNLINK */ 10: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B);
    await ctx.vfs.unlink(ctx.inodes.childPath(parent, name));
    ctx.inodes.remove(parent, name);
    return empty(req);
  },
  /* RMDIR */ 11: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B);
    await ctx.vfs.rmdir(ctx.inodes.childPath(parent, name));
    ctx.inodes.remove(parent, name);
    return empty(req);
  },
  /* RENAME */ 12: (ctx, h, req) => rename(ctx, h, req, u64(req, B), 0, B + 8),
  /* LINK */ 13: async (ctx, h, req) => {
    // One inode, several names: the reply names the source's node, now reachable by the new name too.
    const source = ctx.inodes.get(u64(req, B));
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B + 8);
    const to = ctx.inodes.childPath(parent, name);
    await ctx.vfs.link(ctx.inodes.pathOf(source), to);
    const a = await ctx.vfs.getattr(to);
    if (source.linkedIno === undefined && linkedIno(a) !== undefined) ctx.inodes.adoptLinked(source, a.ino);
    const node = ctx.inodes.lookup(parent, name, linkedIno(a));
    node.last = a;
    return entryReply(ctx, req, node, a);
  },
  /* OPEN */ 14: async (ctx, h, req) => {
    const node = ctx.inodes.get(h.nodeid);
    const [fh, flags, backing] = await openFile(ctx, node, ctx.inodes.pathOf(node), req.readUInt32LE(B));
    return openReply(req, fh, flags, backing);
  },
  /* READ */ 15: async (ctx, _h, req) => {
    const size = req.readUInt32LE(B + 16);
    const out = readReplyBuffer(req, size);
    const fh = u64(req, B);
    const offset = u64(req, B + 8);
    const n = await ctx.vfs.readInto(fh, out.subarray(16, 16 + size), offset);
    registerReadBlocks(ctx, fh, offset, n);
    out.writeUInt32LE(16 + n, 0);
    return out.subarray(0, 16 + n);
  },
  /* WRITE */ 16: async (ctx, _h, req) => {
    const size = req.readUInt32LE(B + 16);
    const n = await ctx.vfs.write(u64(req, B), u64(req, B + 8), req.subarray(B + 40, B + 40 + size));
    const out = replyBuffer(req, 8);
    out.writeUInt32LE(n, 16);
    out.writeUInt32LE(0, 20);
    return out;
  },
  /* STATFS */ 17: async (ctx, h, req) => {
    const s = await ctx.vfs.statfs(nodePath(ctx, h));
    const out = replyBuffer(req, 80);
    out.fill(0, 16);
    [s.blocks, s.bfree, s.bavail, s.files, s.ffree].forEach((v, i) => w64(out, 16 + i * 8, v));
    out.writeUInt32LE(s.bsize, 56);
    out.writeUInt32LE(s.namemax, 60);
    out.writeUInt32LE(s.frsize, 64);
    return out;
  },
  /* RELEASE */ 18: async (ctx, _h, req) => {
    const fh = u64(req, B);
    releaseOpen(ctx, fh);
    ctx.unregisterFd(fh);
    dropBlockHandle(ctx, fh);
    await ctx.vfs.release(fh);
    return empty(req);
  },
  /* FSYNC */ 20: async (ctx, _h, req) => {
    await ctx.vfs.fsync(u64(req, B));
    return empty(req);
  },
  /* SETXATTR */ 21: ENOSYS,
  /* GETXATTR */ 22: async (ctx, h, req) => {
    const [name] = cstr(req, B + 8);
    if (h.nodeid === ROOT_ID && name === XATTR_FUSE) return xattrReply(req, Buffer.from(JSON.stringify(ctx.stats())));
    return xattrReply(req, await ctx.vfs.getxattr(nodePath(ctx, h), name));
  },
  /* LISTXATTR */ 23: async (ctx, h, req) => {
    const names = h.nodeid === ROOT_ID ? [XATTR_FUSE] : await ctx.vfs.listxattr(nodePath(ctx, h));
    return xattrReply(req, Buffer.from(names.map((n) => `${n}\0`).join('')));
  },
  /* REMOVEXATTR */ 24: ENOSYS,
  /* FLUSH */ 25: async (ctx, _h, req) => {
    await ctx.vfs.flush(u64(req, B));
    return empty(req);
  },
  /* OPENDIR */ 27: opendir,
  /* READDIR */ 28: (ctx, h, req) => readdirReply(ctx, h, req, false),
  /* RELEASEDIR */ 29: async (ctx, _h, req) => {
    ctx.dirs.delete(u64(req, B));
    return empty(req);
  },
  /* FSYNCDIR */ 30: async (_ctx, _h, req) => empty(req),
  /* CREATE */ 35: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const flags = req.readUInt32LE(B);
    const mode = req.readUInt32LE(B + 4);
    const [name] = cstr(req, B + 16);
    const path = ctx.inodes.childPath(parent, name);
    const fh = await ctx.vfs.open(path, { ...openFlags(flags), write: true, create: true, mode: mode & 0o7777, owner: callerOf(h) });
    try {
      const [out, node] = await created(ctx, req, parent, name, 16);
      if (node.backing) throw new FsError('EBUSY', `${path} is open for reading through kernel passthrough`);
      noteCached(ctx, fh, node);
      w64(out, 16 + ENTRY_OUT, fh);
      out.writeUInt32LE(0, 16 + ENTRY_OUT + 8);
      out.writeUInt32LE(0, 16 + ENTRY_OUT + 12);
      node.openEtag = undefined;
      registerWriter(ctx, fh, node);
      return out;
    } catch (err) {
      await ctx.vfs.release(fh).catch(() => undefined);
      throw err;
    }
  },
  /* FALLOCATE */ 43: async (ctx, _h, req) => {
    await ctx.vfs.fallocate(u64(req, B), req.readUInt32LE(B + 24), u64(req, B + 8), u64(req, B + 16));
    return empty(req);
  },
  /* READDIRPLUS */ 44: (ctx, h, req) => readdirReply(ctx, h, req, true),
  /* RENAME2 */ 45: (ctx, h, req) => rename(ctx, h, req, u64(req, B), req.readUInt32LE(B + 8), B + 16),
  /* LSEEK */ 46: async (ctx, _h, req) => {
    // Handles the addon could not lseek natively (content read through the cache): all data, no holes.
    const offset = u64(req, B + 8);
    const whence = req.readUInt32LE(B + 16);
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FsError('EINVAL', `lseek whence ${whence}`);
    const size = (await ctx.vfs.getattr(ctx.vfs.handlePath(u64(req, B)))).size;
    if (offset >= size) return errorReply(req, ENXIO);
    const out = replyBuffer(req, 8);
    w64(out, 16, whence === SEEK_DATA ? offset : size);
    return out;
  },
  /* COPY_FILE_RANGE */ 47: copyFileRange,
};

/** A copy inside the daemon, chunk by chunk, between two handles of one location (no trip through the caller). */
async function copyFileRange(ctx: OpContext, _h: InHeader, req: Buffer): Promise<Buffer> {
  const fhIn = u64(req, B);
  const fhOut = u64(req, B + 24);
  let offIn = u64(req, B + 8);
  let offOut = u64(req, B + 32);
  const len = Math.min(u64(req, B + 40), COPY_MAX);
  const from = splitPath(ctx.vfs.handlePath(fhIn))[0];
  const to = splitPath(ctx.vfs.handlePath(fhOut))[0];
  if (!from || from !== to) throw new FsError('EXDEV', 'copy_file_range across locations: the kernel copies through the caller');
  const buf = Buffer.allocUnsafe(Math.min(len, 1 << 20));
  let done = 0;
  while (done < len) {
    const n = await ctx.vfs.readInto(fhIn, buf.subarray(0, Math.min(buf.length, len - done)), offIn);
    if (n === 0) break;
    await ctx.vfs.write(fhOut, offOut, buf.subarray(0, n));
    done += n;
    offIn += n;
    offOut += n;
  }
  const out = replyBuffer(req, 8);
  out.writeUInt32LE(done, 16);
  out.writeUInt32LE(0, 20);
  return out;
}

async function rename(ctx: OpContext, h: InHeader, req: Buffer, newdir: number, flags: number, namesAt: number): Promise<Buffer> {
  const parent = ctx.inodes.get(h.nodeid);
  const newParent = ctx.inodes.get(newdir);
  const [name, next] = cstr(req, namesAt);
  const [newName] = cstr(req, next);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) throw new FsError('EINVAL', `rename flags ${flags} are not supported`);
  const exchange = (flags & RENAME_EXCHANGE) !== 0;
  await ctx.vfs.rename(ctx.inodes.childPath(parent, name), ctx.inodes.childPath(newParent, newName), { noReplace: (flags & RENAME_NOREPLACE) !== 0, exchange });
  if (exchange) ctx.inodes.exchange(parent, name, newParent, newName);
  else ctx.inodes.rename(parent, name, newParent, newName);
  return empty(req);
}
