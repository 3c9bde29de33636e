import type { Ctx } from '../context';
import { checkIfHeader, header, readDepth, statOrNull } from '../context';
import { checkPreconditions } from '../conditional';
import { isFsError } from '../../../core/fs-error';
import { HttpError } from '../http-error';
import { isFinderJunk } from '../junk';
import { decodeRequestPath, isWithin, parentPath } from '../paths';
import { copyTree, deleteTree } from '../tree';

/**
 * The Destination header as a virtual path. It must name this server: an absolute URL
 * for another host:port is refused with 502 (we never proxy), a relative one is taken
 * as a path. Throws HttpError 400 (missing/malformed) or 502.
 */
export function destinationOf(ctx: Ctx): string {
  const dest = header(ctx.req, 'destination');
  if (!dest) throw new HttpError(400, 'Destination header required');
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(dest);
  if (m) {
    const host = m[2]!.replace(/^[^@]*@/, '').toLowerCase();
    const own = String(ctx.req.headers.host ?? '').toLowerCase();
    if (host !== own) throw new HttpError(502, 'Destination is on another server');
  }
  return decodeRequestPath(dest).vpath;
}

/**
 * COPY and MOVE. Overwrite: F with an existing destination → 412; T (default) deletes the
 * destination first. MOVE within a location is one atomic vfs.rename; across locations
 * (EXDEV) it is copy then delete. 201 when the destination was created, 204 when replaced.
 */
export async function handleCopyMove(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path } = ctx;
  const move = req.method === 'MOVE';
  const dest = destinationOf(ctx);
  if (isFinderJunk(path)) throw new HttpError(404, 'not stored');
  const attr = await statOrNull(vfs, path);
  if (!attr) throw new HttpError(404, 'no such resource');
  await checkIfHeader(ctx, attr);
  checkPreconditions(req, attr, false);
  const depth = readDepth(req, 'infinity');
  if (depth === 1 || (move && depth !== 'infinity')) throw new HttpError(400, `Depth ${depth} is not allowed for ${req.method}`);
  if (dest === path) throw new HttpError(403, 'source and destination are the same');
  if (attr.type === 'dir' && isWithin(dest, path)) throw new HttpError(403, 'cannot copy or move a collection into itself');
  // Replacing the destination first would delete the source with it (rename(2) answers ENOTEMPTY).
  if (isWithin(path, dest)) throw new HttpError(403, 'cannot copy or move a resource onto a collection that holds it');
  if (dest.split('/').length < 3 || (move && path.split('/').length < 3)) throw new HttpError(403, 'locations cannot be copied over, moved or replaced');
  const overwrite = String(req.headers['overwrite'] ?? 'T')
    .trim()
    .toUpperCase();
  if (overwrite !== 'T' && overwrite !== 'F') throw new HttpError(400, 'Overwrite must be T or F');
  const destParent = parentPath(dest);
  const pattr = await statOrNull(vfs, destParent);
  if (!pattr || pattr.type !== 'dir') throw new HttpError(409, 'destination parent collection does not exist');
  const dattr = await statOrNull(vfs, dest);
  if (dattr && overwrite === 'F') throw new HttpError(412, 'destination exists and Overwrite is F');
  if (move) {
    ctx.locks.assertCanModify(path, ctx.tokens, true);
    ctx.locks.assertCanModify(parentPath(path), ctx.tokens);
  }
  ctx.locks.assertCanModify(dest, ctx.tokens, true);
  ctx.locks.assertCanModify(destParent, ctx.tokens);

  if (dattr) {
    await deleteTree(vfs, dest, dattr);
    ctx.locks.removeWithin(dest);
  }
  if (move) {
    try {
      await vfs.rename(path, dest);
    } catch (err) {
      if (!isFsError(err) || err.code !== 'EXDEV') throw err;
      await copyTree(vfs, ctx.handles, path, dest, attr, 'infinity');
      await deleteTree(vfs, path, attr);
    }
    ctx.locks.removeWithin(path); // locks stay with the URL, they do not follow a MOVE
  } else {
    await copyTree(vfs, ctx.handles, path, dest, attr, depth === 0 ? 0 : 'infinity');
  }
  res.writeHead(dattr ? 204 : 201, { 'Content-Length': '0' });
  res.end();
}
