import type { Ctx } from '../context';
import { checkIfHeader, hasBody, statOrNull } from '../context';
import { checkPreconditions } from '../conditional';
import { HttpError } from '../http-error';
import { isFinderJunk } from '../junk';
import { parentPath } from '../paths';
import { deleteTree } from '../tree';

/**
 * DELETE of a file or a whole collection (Depth must be infinity or absent). Locks on the
 * resource, on anything below it and on its parent collection must be submitted.
 */
export async function handleDelete(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path } = ctx;
  if (hasBody(req)) throw new HttpError(415, 'DELETE takes no body');
  if (isFinderJunk(path)) throw new HttpError(404, 'not stored');
  if (path.split('/').length < 3) throw new HttpError(403, 'locations and the root cannot be deleted over WebDAV');
  const attr = await statOrNull(vfs, path);
  if (!attr) throw new HttpError(404, 'no such resource');
  await checkIfHeader(ctx, attr);
  checkPreconditions(req, attr, false);
  const depth = req.headers['depth'];
  if (attr.type === 'dir' && depth !== undefined && String(depth).toLowerCase() !== 'infinity') throw new HttpError(400, 'DELETE of a collection needs Depth: infinity');
  ctx.locks.assertCanModify(path, ctx.tokens, true);
  ctx.locks.assertCanModify(parentPath(path), ctx.tokens);
  await deleteTree(vfs, path, attr);
  ctx.locks.removeWithin(path);
  res.writeHead(204);
  res.end();
}
