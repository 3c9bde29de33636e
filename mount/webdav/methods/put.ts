import { etagOf } from '../etag';
import { randomBytes } from 'node:crypto';
import type { Ctx } from '../context';
import { checkIfHeader, statOrNull } from '../context';
import { checkPreconditions } from '../conditional';
import { HttpError } from '../http-error';
import { isFinderJunk, PUT_TEMP_PREFIX } from '../junk';
import { joinPath, parentPath } from '../paths';
import { CHUNK, openCounted, releaseCounted } from '../tree';
import { streamedBytes } from '../../../core/idle-gc';

/** Drains and discards a request body (Finder junk, refused requests). */
export async function drain(ctx: Ctx): Promise<void> {
  for await (const _ of ctx.req as AsyncIterable<Buffer>) void _;
}

/**
 * PUT, streamed: the body is written in ~1 MiB slices to a temporary name in the
 * target's directory, fsynced, and renamed over the target only once the whole body has
 * arrived (and matches Content-Length / X-Expected-Entity-Length). A client that
 * disconnects mid-upload leaves the old content untouched and the temporary removed.
 * Dead properties of a replaced file are carried over. 201 when created, 204 when replaced.
 */
export async function handlePut(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path } = ctx;
  if (path === '/' || path.split('/').length < 3) throw new HttpError(405, 'PUT needs a path inside a location');
  if (req.headers['content-range']) throw new HttpError(400, 'partial PUT (Content-Range) is not supported');
  if (isFinderJunk(path)) {
    await drain(ctx);
    res.writeHead(201, { 'Content-Length': '0' });
    res.end();
    return;
  }
  const attr = await statOrNull(vfs, path);
  await checkIfHeader(ctx, attr);
  checkPreconditions(req, attr, false);
  if (attr?.type === 'dir') throw new HttpError(405, 'PUT on a collection');
  const parent = parentPath(path);
  const pattr = await statOrNull(vfs, parent);
  if (!pattr || pattr.type !== 'dir') throw new HttpError(409, 'parent collection does not exist');
  ctx.locks.assertCanModify(path, ctx.tokens);
  if (!attr) ctx.locks.assertCanModify(parent, ctx.tokens);
  if (pattr.readonly || attr?.readonly) throw new HttpError(403, 'read-only location');

  const expectedHeader = req.headers['content-length'] ?? req.headers['x-expected-entity-length'];
  const expected = expectedHeader === undefined ? undefined : Number(expectedHeader);
  if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) throw new HttpError(400, 'bad entity length');

  const tmp = joinPath(parent, `${PUT_TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
  const fh = await openCounted(vfs, ctx.handles, tmp, { write: true, create: true, exclusive: true, truncate: true, mode: attr?.mode ?? 0o644 });
  let released = false;
  let renamed = false;
  try {
    // One reusable 1 MiB staging buffer per upload: no per-chunk allocation, so a 4 GiB
    // PUT does not leave gigabytes of garbage for the GC to find (RSS stays flat).
    const stage = Buffer.allocUnsafe(CHUNK);
    let staged = 0;
    let off = 0;
    const flushPending = async () => {
      if (staged === 0) return;
      await vfs.write(fh, off, stage.subarray(0, staged)); // resolved = the VFS no longer needs the bytes
      off += staged;
      staged = 0;
    };
    for await (const chunk of req as AsyncIterable<Buffer>) {
      ctx.metrics.bytesIn += chunk.length;
      streamedBytes(chunk.length, false); // fresh socket buffers: scavenged every few MiB (docs/webdav.md)
      let pos = 0;
      while (pos < chunk.length) {
        const n = chunk.copy(stage, staged, pos);
        staged += n;
        pos += n;
        if (staged === CHUNK) await flushPending();
      }
    }
    await flushPending();
    if (!req.complete) throw new HttpError(400, 'request body ended early');
    if (expected !== undefined && off !== expected) throw new HttpError(400, `body had ${off} bytes, expected ${expected}`);
    await vfs.fsync(fh);
    released = true;
    await releaseCounted(vfs, ctx.handles, fh);
    const props = attr ? await vfs.getProps(path).catch(() => []) : [];
    await vfs.rename(tmp, path);
    renamed = true;
    if (props.length > 0) await vfs.patchProps(path, props, []);
  } finally {
    if (!released) await releaseCounted(vfs, ctx.handles, fh).catch(() => undefined);
    if (!renamed) await vfs.unlink(tmp).catch(() => undefined);
  }
  const extra: Record<string, string> = {};
  // rclone (owncloud/nextcloud vendors) sends the source mtime in seconds
  const ocMtime = Number(req.headers['x-oc-mtime']);
  if (req.headers['x-oc-mtime'] !== undefined && Number.isFinite(ocMtime) && ocMtime > 0) {
    const ok = await vfs.utimens(path, ocMtime * 1000, ocMtime * 1000).then(
      () => true,
      () => false,
    );
    if (ok) extra['X-OC-Mtime'] = 'accepted';
  }
  const now = await statOrNull(vfs, path);
  res.writeHead(attr ? 204 : 201, { ...extra, ...(now ? { ETag: etagOf(now) } : {}), 'Content-Length': '0' });
  res.end();
}
