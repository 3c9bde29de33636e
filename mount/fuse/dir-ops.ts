import { FsError } from '../../core/fs-error';
import { ENTRY_OUT, FOPEN, direntSize, direntType, replyBuffer, u64, writeDirent, writeEntry, type InHeader } from './proto';
import { B, linkedIno, openReply, type OpContext } from './op-context';

/** A kept listing must outlive the walk that uses it: it is reused only while this much younger than the timeouts. */
const LISTING_MARGIN_MS = 1000;

/** Handles the addon gives folders it opens itself (native-dirs.h NATIVE_DIR_FH); ours count up from 1. */
const NATIVE_DIR_FH = 2 ** 51;

/** How long a listing taken now may be reused by the kernel (KEEP_CACHE). */
function reusableMs(ctx: OpContext): number {
  return 1000 * Math.min(ctx.entryTtl, ctx.attrTtl) - LISTING_MARGIN_MS;
}

const DOTS = 2;
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
const DT_DIR = 4;

export async function readdirReply(ctx: OpContext, h: InHeader, req: Buffer, plus: boolean): Promise<Buffer> {
  const fh = u64(req, B);
  let list = ctx.dirs.get(fh);
  if (list === undefined && fh >= NATIVE_DIR_FH) {
    // Opened by the addon (a fresh folder), but the kernel no longer has the listing: ours from now on.
    ctx.adoptDir(fh);
    ctx.dirs.set(fh, (list = null));
  }
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
    if (seq === ctx.changeSeq) ctx.freshDir(dir.id, reusableMs(ctx));
  }
  const size = req.readUInt32LE(B + 16);
  const out = replyBuffer(req, size);
  let at = 16;
  // '.' and '..' come first, as on a disk. They also keep every listing the kernel caches
  // non-empty: an empty cached listing has no page for OPENDIR's invalidation to drop, so the
  // kernel would go on showing a folder empty after a name appeared in it (fs/fuse/readdir.c).
  for (let i = start; i < DOTS; i++) {
    const nameBuf = i === 0 ? DOT : DOTDOT;
    const need = direntSize(nameBuf.length) + (plus ? ENTRY_OUT : 0);
    if (at + need > out.length) break;
    if (plus) {
      out.fill(0, at, at + ENTRY_OUT); // node id 0: the kernel takes nothing from a dot's entry
      at += ENTRY_OUT;
    }
    const node = i === 0 ? dir : (dir.parent ?? dir);
    at += writeDirent(out, at, node.last?.ino ?? node.id, i + 1, nameBuf, DT_DIR);
  }
  for (let i = Math.max(start, DOTS) - DOTS; i < list.length; i++) {
    const { name, attr } = list[i];
    const nameBuf = Buffer.from(name);
    const need = direntSize(nameBuf.length) + (plus ? ENTRY_OUT : 0);
    if (at + need > out.length) break;
    if (plus) {
      const node = ctx.inodes.lookup(dir, name, attr.type, linkedIno(attr));
      // Folders are few: the invalidator checks the ones it has attributes of against the index.
      if (attr.type === 'dir') node.last = attr;
      writeEntry(out, at, node.id, ctx.inodes.generation, attr, ctx.entryTtl, ctx.attrTtl);
      at += ENTRY_OUT;
    }
    at += writeDirent(out, at, attr.ino, i + DOTS + 1, nameBuf, direntType(attr));
  }
  out.writeUInt32LE(at, 0);
  return out.subarray(0, at);
}

/**
 * OPENDIR: the kernel may keep the listing of this folder in its page cache (FOPEN_CACHE_DIR)
 * and reuse it at the next open (KEEP_CACHE) while the last listing is younger than the entry
 * and attribute timeouts (so its names and attributes are all still cached) and the index has
 * not changed since (any change: the listing is taken again). The kernel itself drops it when
 * the folder changes through the mount (its version moves) or its node is invalidated. While a
 * listing is fresh, the addon answers the folder's OPENDIR and RELEASEDIR itself (freshDir;
 * native-dirs.c); another process's commit is then seen by the next request that reaches JS,
 * within the entry timeout the kernel caches names for anyway.
 */
export async function opendir(ctx: OpContext, h: InHeader, req: Buffer): Promise<Buffer> {
  const dir = ctx.inodes.get(h.nodeid);
  // A folder removed (or replaced) while someone stands in it: its old path may name something else now.
  if (dir.unlinked) throw new FsError('ENOENT', `${ctx.inodes.pathOf(dir)} was removed`);
  const a = await ctx.vfs.getattr(ctx.inodes.pathOf(dir)); // also notices a commit by another process (changeSeq)
  if (a.type !== 'dir') throw new FsError('ENOTDIR', `${ctx.inodes.pathOf(dir)} is not a directory`);
  const fh = ctx.nextDir++;
  ctx.dirs.set(fh, null);
  const l = dir.listed;
  const left = l !== undefined && l.seq === ctx.changeSeq ? reusableMs(ctx) - (Date.now() - l.at) : 0;
  const fresh = left > 0;
  if (!fresh) dir.listed = undefined;
  // The next opens, until the listing is too old or anything changes, are answered by the addon alike.
  else ctx.freshDir(dir.id, left);
  return openReply(req, fh, FOPEN.CACHE_DIR | (fresh ? FOPEN.KEEP_CACHE : 0));
}
