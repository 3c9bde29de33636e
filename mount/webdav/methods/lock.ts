import type { Ctx } from '../context';
import { checkIfHeader, readDepth, readSmallBody, statOrNull } from '../context';
import { checkPreconditions } from '../conditional';
import { HttpError } from '../http-error';
import { isFsError } from '../../../core/fs-error';
import { isFinderJunk } from '../junk';
import type { LockScope } from '../locks';
import { sendXml } from '../multistatus';
import { parentPath } from '../paths';
import { activeLockXml } from '../props';
import { childElements, DAV_NS, findChild, parseXml, serializeChildren } from '../xml';
import { openCounted, releaseCounted } from '../tree';

/**
 * LOCK. With a lockinfo body: a new exclusive or shared write lock, Depth 0 or infinity
 * (default), timeout capped at an hour; on an unmapped URL it creates an empty file
 * (RFC 4918 §7.3, what Finder and Windows expect before their PUT) and answers 201.
 * Without a body: refresh of the lock(s) named in the If header, which may cover the
 * URL through a depth-infinity lock on an ancestor.
 */
export async function handleLock(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path, locks } = ctx;
  const body = await readSmallBody(req, ctx.maxBodyBytes);
  const info = parseXml(body, ctx.xmlLimits);
  const timeout = locks.parseTimeout(req.headers['timeout'] as string | undefined);
  const junk = isFinderJunk(path);
  const attr = junk ? null : await statOrNull(vfs, path);

  if (!info) {
    if (!ctx.ifLists) throw new HttpError(400, 'LOCK refresh needs an If header with the lock token');
    await checkIfHeader(ctx, attr);
    const lock = locks.covering(path).find((l) => ctx.tokens.has(l.token));
    if (!lock) throw new HttpError(412, 'no lock token of this resource was submitted', 'lock-token-matches-request-uri');
    locks.refresh(lock, timeout);
    sendXml(res, 200, `<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLockXml(lock)}</D:lockdiscovery></D:prop>`);
    return;
  }

  if (info.ns !== DAV_NS || info.local !== 'lockinfo') throw new HttpError(400, 'expected DAV:lockinfo');
  const scopeEl = findChild(info, DAV_NS, 'lockscope');
  const typeEl = findChild(info, DAV_NS, 'locktype');
  const scopeKid = scopeEl ? childElements(scopeEl)[0] : undefined;
  if (!scopeKid || scopeKid.ns !== DAV_NS || (scopeKid.local !== 'exclusive' && scopeKid.local !== 'shared')) throw new HttpError(400, 'lockscope must be exclusive or shared');
  if (!typeEl || !findChild(typeEl, DAV_NS, 'write')) throw new HttpError(400, 'only write locks exist');
  const ownerEl = findChild(info, DAV_NS, 'owner');
  const owner = ownerEl ? serializeChildren(ownerEl.children, '') : '';
  if (Buffer.byteLength(owner) > 4096) throw new HttpError(413, 'lock owner larger than 4 KiB');
  const depth = readDepth(req, 'infinity');
  if (depth === 1) throw new HttpError(400, 'LOCK Depth must be 0 or infinity');
  if (path.split('/').length < 2 || path === '/') throw new HttpError(403, 'the root cannot be locked');

  await checkIfHeader(ctx, attr);
  if (attr) checkPreconditions(req, attr, false);
  let created = false;
  if (!attr && !junk) {
    const pattr = await statOrNull(vfs, parentPath(path));
    if (!pattr || pattr.type !== 'dir') throw new HttpError(409, 'parent collection does not exist');
    ctx.locks.assertCanModify(parentPath(path), ctx.tokens);
  }
  const lock = locks.create(path, depth === 0 ? 0 : 'infinity', scopeKid.local as LockScope, owner, timeout, ctx.principal);
  if (!attr && !junk) {
    try {
      const fh = await openCounted(vfs, ctx.handles, path, { write: true, create: true, exclusive: true, mode: 0o644 });
      await releaseCounted(vfs, ctx.handles, fh);
      created = true;
    } catch (err) {
      // A read-only location: Windows hangs when a LOCK is refused, so the lock is granted
      // on the unmapped URL (nothing is created) and the PUT that follows gets a clear 403.
      if (!(isFsError(err) && (err.code === 'EROFS' || err.code === 'EACCES' || err.code === 'EPERM'))) {
        locks.remove(lock.token);
        throw err;
      }
    }
  }
  sendXml(res, created || junk ? 201 : 200, `<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLockXml(lock)}</D:lockdiscovery></D:prop>`, {
    'Lock-Token': `<${lock.token}>`,
  });
}
