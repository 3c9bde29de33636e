import { header, type Ctx } from '../context';
import { HttpError } from '../http-error';

/** UNLOCK: the Lock-Token must name a lock that covers the URL (409 otherwise). */
export async function handleUnlock(ctx: Ctx): Promise<void> {
  const h = header(ctx.req, 'lock-token');
  const m = h ? /^\s*<([^>]+)>\s*$/.exec(h) : null;
  if (!m) throw new HttpError(400, 'Lock-Token header required');
  const lock = ctx.locks.get(m[1]!);
  if (!lock || !ctx.locks.covering(ctx.path).includes(lock)) throw new HttpError(409, 'that lock does not cover this resource', 'lock-token-matches-request-uri');
  ctx.locks.remove(lock.token);
  ctx.res.writeHead(204);
  ctx.res.end();
}
