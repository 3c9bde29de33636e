import type { Attr, DirEntry, KernelVfs, NativeBlocks } from '../vfs/types';
import type { FuseNode, InodeTable } from './inode-table';
import { ATTR_OUT, ENTRY_OUT, IN_HEADER, replyBuffer, w64, writeAttr, writeEntry, writeValid, type InHeader } from './proto';

/** Where a request's own fields start (after the header). */
export const B = IN_HEADER;

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
  /**
   * The folder's listing may be reused for `ms` more (see opendir): its OPENDIR and RELEASEDIR are
   * answered natively until then, or until the next change (changeSeq, RMDIR, RENAME).
   */
  freshDir(nodeid: number, ms: number): void;
  /** A handle the addon opened (NATIVE_DIR_FH and up) that JS now keeps a listing for: its RELEASEDIR comes to JS. */
  adoptDir(fh: number): void;
  /**
   * A local handle's descriptor may be read (and written, when `writable`) natively from now on;
   * with `nodeid`, that node's SETATTR (owner, mode, times), GETATTR and FLUSH are answered natively too.
   */
  registerFd(fh: number, fd: number, writable: boolean, nodeid?: number): void;
  unregisterFd(fh: number): void;
  /** READs of content read through the block cache that fall inside registered (verified) block files are answered natively. */
  registerBlocks(fh: number, blockSize: number, size: number): void;
  setBlockFile(fh: number, index: number, path: string | null): void;
  unregisterBlocks(fh: number): void;
  /**
   * Native READs of fh reaching block `index` are reported (NATIVE_BLOCKS_READ) once: returns the
   * highest block read natively when that is already there (nothing armed), else -1.
   */
  blockWake(fh: number, index: number): number;
  /**
   * Before reading a folder's attributes to prime them: a token that primeAttr checks, so that
   * attributes read while another request about the folder was being handled are never primed.
   * Each call is ended by one primeAttr (with `a` undefined to give up).
   */
  primeStart(nodeid: number): number;
  /**
   * The kernel's next GETATTR of `nodeid` is answered natively with `a` (once, within 50 ms): a
   * CREATE made the kernel drop the folder's attributes, and the permission check of the next
   * name in it asks again. Not when another request about the node reached JS since
   * primeStart gave `token`; taken back when one does later.
   */
  primeAttr(nodeid: number, token: number, a?: Attr): void;
  /** Handles with natively read blocks: which blocks are registered, and where to find more. */
  blockHandles: Map<number, BlockHandle>;
  /** Registered block files -> the handles (and block numbers) reading them natively, to unregister before eviction. */
  blockUsers: Map<string, Map<number, number>>;
  /**
   * A new backing file for kernel passthrough of this descriptor's file, when the connection has
   * it: writable when the file could be opened for writing too.
   */
  openBacking(fd: number): { id: number; writable: boolean } | undefined;
  closeBacking(id: number): void;
  /** The node of each open file handle, with the io mode it was opened in. */
  openFiles: Map<number, { node: FuseNode; passthrough: boolean; seq?: number }>;
  /** A handle open for writing by node id (the latest), for SETATTR through its descriptor. */
  writers: Map<number, number>;
  /**
   * Resolves `ms` from now, once no other request is being handled in JS (at most 20 ms later):
   * for work nobody waits for, such as a writer's RELEASE (native-ops.ts, RELEASE_DEFER_MS).
   */
  quiet(ms: number): Promise<void>;
  /** Diagnostics of the binding (node count, requests answered natively), shown as user.vdfs.fuse on the root. */
  stats(): Record<string, number | string>;
}

/** A handle whose verified block files the addon reads (block-files.ts). */
export interface BlockHandle {
  blocks: NativeBlocks;
  /** Registered blocks and their files. */
  known: Map<number, string>;
  /** Verifying ahead of the reader (block-files.ts verifyAhead). */
  ahead: {
    /** The byte after the last READ that reached JS (-1: none yet). */
    end: number;
    /** The block after the last one read (through JS or natively). */
    next: number;
    /** Blocks kept verified ahead of `next`: 0 while reads are not sequential. */
    window: number;
    /** Blocks being verified now. */
    busy: Set<number>;
    /** The first block ahead found not cached: nothing past it is verified until the reader is (JS fetches it). */
    gap: number;
  };
}

/** Answers one request: a whole reply buffer, or null when the kernel expects no reply. Throws FsError. */
export type Handler = (ctx: OpContext, h: InHeader, req: Buffer) => Promise<Buffer | null>;

/** The attribute inode of a file with several names (see InodeTable.lookup), else undefined. */
export function linkedIno(a: Attr): number | undefined {
  return a.nlink > 1 && a.type !== 'dir' ? a.ino : undefined;
}

export function entryReply(ctx: OpContext, req: Buffer, node: FuseNode, a: Attr, extra = 0): Buffer {
  const out = replyBuffer(req, ENTRY_OUT + extra);
  writeEntry(out, 16, node.id, ctx.inodes.generation, a, ctx.entryTtl, ctx.attrTtl);
  return out;
}

export function attrReply(ctx: OpContext, req: Buffer, a: Attr): Buffer {
  const out = replyBuffer(req, ATTR_OUT);
  writeValid(out, 16, 24, ctx.attrTtl);
  out.writeUInt32LE(0, 28);
  writeAttr(out, 32, a);
  return out;
}

export function empty(req: Buffer): Buffer {
  return replyBuffer(req, 0);
}

/** Looks a new name up after creating it, adding the kernel's reference. */
export async function created(ctx: OpContext, req: Buffer, parent: FuseNode, name: string, extra = 0): Promise<[Buffer, FuseNode]> {
  const a = await ctx.vfs.getattr(ctx.inodes.childPath(parent, name));
  const node = ctx.inodes.lookup(parent, name, a.type, linkedIno(a));
  node.last = a;
  return [entryReply(ctx, req, node, a, extra), node];
}

export function openReply(req: Buffer, fh: number, openFlagsOut: number, backingId = 0): Buffer {
  const out = replyBuffer(req, 16);
  w64(out, 16, fh);
  out.writeUInt32LE(openFlagsOut, 24);
  out.writeInt32LE(backingId, 28);
  return out;
}
