import { FsError } from '../../core/fs-error';
import { splitPath } from '../../core/paths';
import type { Caller } from '../vfs/types';
import { ROOT_ID, type FuseNode } from './inode-table';
import { openFlags } from './open-flags';
import { B, attrReply, created, empty, entryReply, linkedIno, openReply, type Handler, type OpContext } from './op-context';
import { busy, openFile, passthroughOpen, releaseOpen, setattr, registerWriter, noteCached, settled, writerNode, directWrites } from './file-ops';
import { dropBlockHandle, registerReadBlocks } from './block-files';
import { opendir, readdirReply } from './dir-ops';
import { readReplyBuffer } from './reply-pool';
import { ENTRY_OUT, RENAME_EXCHANGE, RENAME_NOREPLACE, cstr, errorReply, replyBuffer, u64, w64, writeEntry, type InHeader } from './proto';

const ERANGE = 34;

const XATTR_FUSE = 'user.vdfs.fuse';
const ENXIO = 6;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
/** Bytes per COPY_FILE_RANGE request (the reply counts in 32 bits; callers loop). */
const COPY_MAX = 64 << 20;
/**
 * How long a written file's RELEASE waits, at least, before the index takes it in (hash, entry
 * row); then it waits for the requests being handled (OpContext.quiet). The kernel sends RELEASE
 * after close() has returned, so the writer's next requests (`tar x`: the next file's LOOKUP and
 * CREATE) came right behind it and waited ~180 µs for it on the JS thread; deferred, it runs
 * while the addon answers that file's WRITE, SETATTRs and FLUSH, and the releases of a burst are
 * indexed together. Nothing waits for the reply; the handle's descriptor leaves the addon at
 * once. (docs/fuse.md, "Deferred release".)
 */
const RELEASE_DEFER_MS = 1;

/**
 * After a CREATE in `folder` (`token` from primeStart when it began): the kernel dropped the
 * folder's attributes and asks for them at the next name's permission check; the addon answers
 * that GETATTR with these (the open refreshed the folder's row). Never throws: without it, that
 * GETATTR comes to JS.
 */
async function primeFolder(ctx: OpContext, folder: FuseNode, token: number): Promise<void> {
  let a;
  try {
    a = await ctx.vfs.getattr(ctx.inodes.pathOf(folder));
    folder.last = a;
  } catch {
    /* gone meanwhile: JS answers */
  }
  ctx.primeAttr(folder.id, token, a);
}

/**
 * Runs a change of names in `folders` (one folder, or a rename's two), then primes each
 * folder's next GETATTR (primeFolder): the kernel drops a folder's attributes after any change
 * of its names (MKDIR, UNLINK, RENAME, ...) and asks for them at the next permission check in
 * it, one more request to JS per `rm`, `mkdir` or `rsync -a` of a file. Throws what `change` throws.
 */
async function primedAfter<T>(ctx: OpContext, folders: FuseNode[], change: () => Promise<T>): Promise<T> {
  const tokens = folders.map((f) => ctx.primeStart(f.id));
  let r: T;
  try {
    r = await change();
  } catch (err) {
    folders.forEach((f, i) => ctx.primeAttr(f.id, tokens[i]));
    throw err;
  }
  await Promise.all(folders.map((f, i) => primeFolder(ctx, f, tokens[i])));
  return r;
}

/** The caller of a request: what it creates belongs to them. */
const callerOf = (h: InHeader): Caller => ({ uid: h.uid, gid: h.gid });

/** `slack`: added to the size a size query (size 0) is told, for a value that may grow before the caller reads it. */
function xattrReply(req: Buffer, data: Buffer, slack = 0): Buffer {
  const size = req.readUInt32LE(B);
  if (size === 0) {
    const out = replyBuffer(req, 8);
    out.writeUInt32LE(data.length + slack, 16);
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
      ctx.inodes.negatives.note(parent.id, name, ctx.negativeTtl * 1000);
      const out = replyBuffer(req, ENTRY_OUT);
      writeEntry(out, 16, 0, 0, null, ctx.negativeTtl, 0);
      return out;
    }
  },
  /* GETATTR */ 3: async (ctx, h, req) => {
    const node = ctx.inodes.get(h.nodeid);
    // fstat of a file unlinked while open: the last attributes, with no links (its old path may name another file by now).
    if (node.unlinked && node.last) node.last = { ...node.last, nlink: 0 };
    else {
      const a = await ctx.vfs.getattr(ctx.inodes.pathOf(node));
      // The path names another object now (a folder replaced by a link): this inode is stale. The
      // kernel retries a path walk with a fresh LOOKUP on ESTALE, which gets a new node.
      if (node.type !== undefined && a.type !== node.type) throw new FsError('ESTALE', `${ctx.inodes.pathOf(node)} is a ${a.type} now`);
      node.last = a;
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
    return primedAfter(ctx, [parent], async () => {
      await ctx.vfs.symlink(target, ctx.inodes.childPath(parent, name), callerOf(h));
      return (await created(ctx, req, parent, name))[0];
    });
  },
  /* MKNOD */ 8: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    // fuse_mknod_in: mode (type bits included), rdev (new_encode_dev), umask (already applied).
    const mode = req.readUInt32LE(B);
    const rdev = req.readUInt32LE(B + 4);
    const [name] = cstr(req, B + 16);
    return primedAfter(ctx, [parent], async () => {
      await ctx.vfs.mknod(ctx.inodes.childPath(parent, name), mode, rdev, callerOf(h));
      return (await created(ctx, req, parent, name))[0];
    });
  },
  /* MKDIR */ 9: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B + 8);
    return primedAfter(ctx, [parent], async () => {
      await ctx.vfs.mkdir(ctx.inodes.childPath(parent, name), req.readUInt32LE(B) & 0o7777, callerOf(h), true);
      return (await created(ctx, req, parent, name))[0];
    });
  },
  /* UNLINK */ 10: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B);
    await primedAfter(ctx, [parent], async () => {
      await ctx.vfs.unlink(ctx.inodes.childPath(parent, name), true);
      ctx.inodes.remove(parent, name);
    });
    return empty(req);
  },
  /* RMDIR */ 11: async (ctx, h, req) => {
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B);
    await primedAfter(ctx, [parent], async () => {
      await ctx.vfs.rmdir(ctx.inodes.childPath(parent, name), true);
      ctx.inodes.remove(parent, name);
    });
    return empty(req);
  },
  /* RENAME */ 12: (ctx, h, req) => rename(ctx, h, req, u64(req, B), 0, B + 8),
  /* LINK */ 13: async (ctx, h, req) => {
    // One inode, several names: the reply names the source's node, now reachable by the new name too.
    const source = ctx.inodes.get(u64(req, B));
    const parent = ctx.inodes.get(h.nodeid);
    const [name] = cstr(req, B + 8);
    const to = ctx.inodes.childPath(parent, name);
    await primedAfter(ctx, [parent], () => ctx.vfs.link(ctx.inodes.pathOf(source), to));
    const a = await ctx.vfs.getattr(to);
    if (source.linkedIno === undefined && linkedIno(a) !== undefined) ctx.inodes.adoptLinked(source, a.ino);
    const node = ctx.inodes.lookup(parent, name, a.type, linkedIno(a));
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
    const writer = writerNode(ctx, fh);
    releaseOpen(ctx, fh);
    ctx.unregisterFd(fh);
    dropBlockHandle(ctx, fh);
    // A writer's close is indexed a moment later (see RELEASE_DEFER_MS), after the next requests.
    if (writer) await ctx.quiet(RELEASE_DEFER_MS);
    await ctx.vfs.release(fh);
    if (writer) await settled(ctx, writer);
    return empty(req);
  },
  /* FSYNC */ 20: async (ctx, _h, req) => {
    await ctx.vfs.fsync(u64(req, B));
    return empty(req);
  },
  /* SETXATTR */ 21: ENOSYS,
  /* GETXATTR */ 22: async (ctx, h, req) => {
    const [name] = cstr(req, B + 8);
    // The counters change between getfattr's size query and its read: a counter gaining a digit
    // made the read fail ERANGE. The size query is told 1 KiB more; the read returns what there is.
    if (h.nodeid === ROOT_ID && name === XATTR_FUSE) return xattrReply(req, Buffer.from(JSON.stringify(ctx.stats())), 1024);
    return xattrReply(req, await ctx.vfs.getxattr(nodePath(ctx, h), name));
  },
  // An empty list: vdfs's attributes are read by name only (docs/fuse.md, Extended attributes).
  /* LISTXATTR */ 23: async (ctx, h, req) => {
    nodePath(ctx, h); // ESTALE for a node that is gone
    return xattrReply(req, Buffer.alloc(0));
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
    const seq = ctx.changeSeq;
    const token = ctx.primeStart(parent.id);
    let fh: number;
    try {
      fh = await ctx.vfs.open(path, { ...openFlags(flags), write: true, create: true, mode: mode & 0o7777, owner: callerOf(h), kernel: true });
    } catch (err) {
      ctx.primeAttr(parent.id, token);
      throw err;
    }
    try {
      const [out, node] = await created(ctx, req, parent, name, 16).catch((err: unknown) => {
        ctx.primeAttr(parent.id, token);
        throw err;
      });
      await primeFolder(ctx, parent, token);
      const direct = directWrites(flags, registerWriter(ctx, fh, node));
      const pt = passthroughOpen(ctx, fh, node, undefined);
      if (!pt && node.backing) {
        ctx.unregisterFd(fh);
        if (ctx.writers.get(node.id) === fh) ctx.writers.delete(node.id);
        throw busy(path);
      }
      if (!pt) noteCached(ctx, fh, node, seq);
      w64(out, 16 + ENTRY_OUT, fh);
      out.writeUInt32LE(pt ? pt.flags : direct, 16 + ENTRY_OUT + 8);
      out.writeInt32LE(pt ? pt.backing : 0, 16 + ENTRY_OUT + 12);
      node.openEtag = undefined;
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
  const from = ctx.inodes.childPath(parent, name);
  const to = ctx.inodes.childPath(newParent, newName);
  const opts = { noReplace: (flags & RENAME_NOREPLACE) !== 0, exchange, kernel: true };
  await primedAfter(ctx, newParent === parent ? [parent] : [parent, newParent], async () => {
    await ctx.vfs.rename(from, to, opts);
    if (exchange) ctx.inodes.exchange(parent, name, newParent, newName);
    else ctx.inodes.rename(parent, name, newParent, newName);
  });
  return empty(req);
}
