import { etagOf } from '../etag';
import type { Ctx } from '../context';
import { checkIfHeader, header } from '../context';
import { checkPreconditions } from '../conditional';
import { userContentHeaders } from '../content-type';
import { HttpError } from '../http-error';
import { LISTING_CSP, renderListing } from '../html-listing';
import { isFinderJunk, isHiddenName } from '../junk';
import { followLink, servedTarget } from '../links';
import { joinPath } from '../paths';
import type { Attr, DirEntry } from '../../vfs/types';
import { ChunkPool, streamRange } from '../../../core/chunk-stream';
import { httpDate } from '../props';
import { parseRange, type ByteRange } from '../../../core/http-range';
import { CHUNK, openCounted, releaseCounted } from '../tree';

/**
 * Reads in flight ahead of the socket, 1 MiB each. They were 4 MiB for big transfers: with the
 * free list that was up to 16 MiB per GET, ~12 MB of the daemon's peak while one streamed
 * (docs/read-pipeline.md "Memory while streaming"); the handle's own read-ahead keeps the
 * blocks coming either way.
 */
const READ_AHEAD = 4;

/** A collection as an HTML listing (hidden names, Finder junk and links leading outside left out). */
async function sendListing(ctx: Ctx, linked: { path: string }, common: Record<string, string>): Promise<void> {
  const { vfs, res } = ctx;
  const entries: DirEntry[] = [];
  for (const e of await vfs.readdir(linked.path)) {
    if (isHiddenName(e.name) || isFinderJunk(e.name)) continue;
    const f = await followLink(vfs, joinPath(linked.path, e.name), e.attr);
    if (f) entries.push({ name: e.name, attr: f.attr });
  }
  const body = Buffer.from(renderListing(ctx.path, entries), 'utf8');
  res.writeHead(200, { ...common, 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': LISTING_CSP, 'Content-Length': String(body.length) });
  res.end(ctx.req.method === 'HEAD' ? undefined : body);
}

/** The Range to answer, honouring If-Range (a strong ETag or a date; a mismatch means "send everything"). */
function requestedRange(ctx: Ctx, attr: Attr): ByteRange | 'unsatisfiable' | null {
  const range = parseRange(ctx.req.headers.range, attr.size);
  const ifRange = header(ctx.req, 'if-range');
  if (range && ifRange !== undefined) {
    const same = ifRange.startsWith('"') || ifRange.startsWith('W/') ? ifRange === etagOf(attr) : Date.parse(ifRange) >= Math.floor(attr.mtimeMs / 1000) * 1000;
    if (!same) return null;
  }
  return range;
}

/**
 * GET and HEAD. Files are streamed from `vfs.read` at the requested offset in 1 MiB
 * chunks, with the next chunk read while the previous one is written (one read ahead),
 * and the handle released when the client goes away. Collections get an HTML listing.
 */
export async function handleGet(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path } = ctx;
  const head = req.method === 'HEAD';
  const linked = await servedTarget(vfs, path);
  const { attr } = linked;
  await checkIfHeader(ctx, attr);
  const cond = checkPreconditions(req, attr, true);
  const common: Record<string, string> = { ETag: etagOf(attr), 'Last-Modified': httpDate(attr.mtimeMs) };
  if (cond === 'not-modified') {
    res.writeHead(304, common);
    res.end();
    return;
  }
  if (attr.type === 'dir') return sendListing(ctx, linked, common);
  // A FIFO, socket or device node has no content: not an empty file (a copy would lose what it is).
  if (attr.type !== 'file') throw new HttpError(403, `${path} is a ${attr.type}: it has no content to serve`);
  const size = attr.size;
  const range = requestedRange(ctx, attr);
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...common, ...userContentHeaders(path), 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
    res.end();
    return;
  }
  const start = range ? range.start : 0;
  const length = range ? range.end - range.start + 1 : size;
  const headers: Record<string, string> = { ...common, ...userContentHeaders(path), 'Content-Length': String(length), 'Accept-Ranges': 'bytes' };
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
  // Opened before the status line: a refusal (a path through a swapped-in symlink, a source
  // gone) is an error answer, not a dropped connection.
  const fh = head || length === 0 ? undefined : await openCounted(vfs, ctx.handles, linked.path);
  res.writeHead(range ? 206 : 200, headers);
  if (fh === undefined) {
    res.end();
    return;
  }
  try {
    await streamBody(ctx, fh, start, length);
  } finally {
    await releaseCounted(vfs, ctx.handles, fh);
  }
}

/**
 * The chunks of every GET, one pool for the whole server (a chunk goes back once the socket has
 * flushed it): with a pool per transfer, every ranged GET of 1 MiB paid for fresh memory before
 * its first byte (4–5 ms on this project's VMs, where a reused buffer answers in ~0.7).
 */
const chunks = new ChunkPool(CHUNK, READ_AHEAD + 2);

/**
 * Sends bytes [start, start + length) of the open file `fh`, up to READ_AHEAD chunks of 1 MiB
 * read ahead of the socket. A body cut short (the file shrank) is never ended as if it were
 * complete: the connection is cut. Returns when the client goes away.
 */
async function streamBody(ctx: Ctx, fh: number, start: number, length: number): Promise<void> {
  const { vfs, res } = ctx;
  const r = await streamRange(
    res,
    (buf, pos) => vfs.readInto(fh, buf, pos),
    start,
    length,
    chunks,
    READ_AHEAD,
    (n) => (ctx.metrics.bytesOut += n),
  );
  if (r === 'short') res.destroy();
  else if (r === 'done') res.end();
}
