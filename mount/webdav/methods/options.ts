import type { Ctx } from '../context';

export const ALLOW = 'OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK';

/**
 * OPTIONS on any URL (also `*` and the server root, which Windows probes even when the
 * share is a subpath): 200, never 204, because old Mini-Redirectors mishandle 204.
 */
export async function handleOptions(ctx: Ctx): Promise<void> {
  ctx.res.writeHead(200, {
    DAV: '1, 2',
    'MS-Author-Via': 'DAV',
    Allow: ALLOW,
    'Accept-Ranges': 'bytes',
    'Content-Length': '0',
  });
  ctx.res.end();
}
