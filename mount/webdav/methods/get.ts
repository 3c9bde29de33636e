import { etagOf } from '../etag';
import type { Ctx } from '../context';
import { checkIfHeader, header, statOrNull } from '../context';
import { checkPreconditions } from '../conditional';
import { userContentHeaders } from '../content-type';
import { HttpError } from '../http-error';
import { LISTING_CSP, renderListing } from '../html-listing';
import { isFinderJunk, isFinderMarker, isHiddenName, markerAttr } from '../junk';
import { followLink } from '../links';
import { joinPath } from '../paths';
import type { DirEntry } from '../../vfs/types';
import { writeChunk } from '../multistatus';
import { httpDate } from '../props';
import { parseRange } from '../../../core/http-range';
import { CHUNK, openCounted, releaseCounted } from '../tree';

const READ_AHEAD = 2;

/**
 * GET and HEAD. Files are streamed from `vfs.read` at the requested offset in 1 MiB
 * chunks, with the next chunk read while the previous one is written (one read ahead),
 * and the handle released when the client goes away. Collections get an HTML listing.
 */
export async function handleGet(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path } = ctx;
  const head = req.method === 'HEAD';
  if (isFinderJunk(path)) throw new HttpError(404, 'not stored');
  const found = isFinderMarker(path) ? await statOrNull(vfs, path) : await vfs.getattr(path);
  const linked = found ? await followLink(vfs, path, found) : { path, attr: markerAttr() };
  if (!linked) throw new HttpError(404, 'symlink to outside its location, or dangling');
  const { attr } = linked;
  await checkIfHeader(ctx, attr);
  const cond = checkPreconditions(req, attr, true);
  const common: Record<string, string> = { ETag: etagOf(attr), 'Last-Modified': httpDate(attr.mtimeMs) };
  if (cond === 'not-modified') {
    res.writeHead(304, common);
    res.end();
    return;
  }
  if (attr.type === 'dir') {
    const entries: DirEntry[] = [];
    for (const e of await vfs.readdir(linked.path)) {
      if (isHiddenName(e.name) || isFinderJunk(e.name)) continue;
      const f = await followLink(vfs, joinPath(linked.path, e.name), e.attr);
      if (f) entries.push({ name: e.name, attr: f.attr });
    }
    const body = Buffer.from(renderListing(path, entries), 'utf8');
    res.writeHead(200, { ...common, 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': LISTING_CSP, 'Content-Length': String(body.length) });
    res.end(head ? undefined : body);
    return;
  }
  // A FIFO, socket or device node has no content: not an empty file (a copy would lose what it is).
  if (attr.type !== 'file') throw new HttpError(403, `${path} is a ${attr.type}: it has no content to serve`);
  const size = attr.size;
  let range = parseRange(req.headers.range, size);
  const ifRange = header(req, 'if-range');
  if (range && ifRange !== undefined) {
    // If-Range: a strong ETag or a date; a mismatch means "send everything"
    const same = ifRange.startsWith('"') || ifRange.startsWith('W/') ? ifRange === etagOf(attr) : Date.parse(ifRange) >= Math.floor(attr.mtimeMs / 1000) * 1000;
    if (!same) range = null;
  }
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...common, ...userContentHeaders(path), 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
    res.end();
    return;
  }
  const start = range ? range.start : 0;
  const length = range ? range.end - range.start + 1 : size;
  const headers: Record<string, string> = {
    ...common,
    ...userContentHeaders(path),
    'Content-Length': String(length),
    'Accept-Ranges': 'bytes',
  };
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
  // Opened before the status line: a refusal (a path through a swapped-in symlink, a source
  // gone) is an error answer, not a dropped connection.
  const fh = head || length === 0 ? undefined : await openCounted(vfs, ctx.handles, linked.path);
  res.writeHead(range ? 206 : 200, headers);
  if (fh === undefined) {
    res.end();
    return;
  }
  // Reads run ahead of the socket by up to READ_AHEAD chunks; big transfers use bigger
  // chunks (fewer syscalls and promise turns), a 1 MiB range stays one 1 MiB read.
  const chunk = length >= 16 * CHUNK ? 4 * CHUNK : CHUNK;
  const end = start + length;
  const pool = new BufferPool(chunk);
  // Reusing a few buffers keeps RSS flat while gigabytes stream out (fresh 4 MiB buffers
  // are only reclaimed by a GC much later).
  const readAt = async (off: number, n: number): Promise<{ data: Buffer; owner?: Buffer }> => {
    const owner = pool.take();
    try {
      const got = await vfs.readInto(fh, owner.subarray(0, n), off);
      return { data: owner.subarray(0, got), owner };
    } catch (err) {
      pool.give(owner);
      throw err;
    }
  };
  const queue: Promise<{ data: Buffer; owner?: Buffer }>[] = [];
  let nextOff = start;
  const fill = () => {
    while (queue.length < READ_AHEAD && nextOff < end) {
      const n = Math.min(chunk, end - nextOff);
      const p = readAt(nextOff, n);
      p.catch(() => undefined); // observed below; never an unhandled rejection
      queue.push(p);
      nextOff += n;
    }
  };
  try {
    let sent = 0;
    fill();
    while (queue.length > 0) {
      const { data, owner } = await queue.shift()!;
      if (data.length === 0) break; // the file shrank under us: the client sees a short body
      sent += data.length;
      fill();
      ctx.metrics.bytesOut += data.length;
      // the buffer goes back to the pool once the socket has flushed it
      if (!(await writeChunk(res, data, owner ? () => pool.give(owner) : undefined))) return; // client went away: the finally releases the handle
    }
    if (sent < length)
      res.destroy(); // never end a short body as if it were complete
    else res.end();
  } finally {
    await Promise.allSettled(queue);
    await releaseCounted(vfs, ctx.handles, fh);
  }
}

/** A free list of equal-sized buffers for one transfer. */
class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly size: number) {}
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }
  give(b: Buffer): void {
    if (this.free.length < READ_AHEAD + 2) this.free.push(b);
  }
}
