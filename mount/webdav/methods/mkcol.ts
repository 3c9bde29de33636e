import type { Ctx } from '../context';
import { checkIfHeader, hasBody, statOrNull } from '../context';
import { HttpError } from '../http-error';
import { isFinderJunk } from '../junk';
import { parentPath } from '../paths';

/** MKCOL: 201; 405 when something exists there; 409 without a parent; 415 with a body. */
export async function handleMkcol(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path } = ctx;
  if (hasBody(req)) throw new HttpError(415, 'MKCOL with a body is not supported');
  if (path.split('/').length < 3) throw new HttpError(path === '/' ? 405 : 403, 'locations are added with `vdfs location add`');
  if (isFinderJunk(path)) throw new HttpError(403, 'Finder metadata is not stored');
  const attr = await statOrNull(vfs, path);
  await checkIfHeader(ctx, attr);
  if (attr) throw new HttpError(405, 'a resource already exists there');
  const parent = parentPath(path);
  const pattr = await statOrNull(vfs, parent);
  if (!pattr || pattr.type !== 'dir') throw new HttpError(409, 'parent collection does not exist');
  ctx.locks.assertCanModify(path, ctx.tokens);
  ctx.locks.assertCanModify(parent, ctx.tokens);
  await vfs.mkdir(path, 0o755);
  res.writeHead(201, { 'Content-Length': '0' });
  res.end();
}
