import type { DeadProp } from '../../vfs/types';
import type { Ctx } from '../context';
import { checkIfHeader, readSmallBody } from '../context';
import { checkPreconditions } from '../conditional';
import { HttpError } from '../http-error';
import { isFinderJunk } from '../junk';
import { renderResponse, sendXml, type PropOut } from '../multistatus';
import { hrefFor } from '../paths';
import { LIVE_PROPS } from '../props';
import { childElements, DAV_NS, parseXml, serializeChildren } from '../xml';

const MS_NS = 'urn:schemas-microsoft-com:';

/**
 * Windows sets a copied file's time with Win32LastModifiedTime (an HTTP date). It is kept
 * as a dead property and also applied to the entry, best effort: the PROPPATCH has
 * already succeeded and Windows must never see it fail over a time stamp.
 */
async function applyWin32Mtime(ctx: Ctx, set: DeadProp[]): Promise<void> {
  const p = set.find((x) => x.ns === MS_NS && x.name === 'Win32LastModifiedTime');
  const ms = p ? Date.parse(p.value.trim()) : NaN;
  if (Number.isNaN(ms)) return;
  await ctx.vfs.utimens(ctx.path, ms, ms).catch((err) => ctx.log?.debug({ err, path: ctx.path }, 'Win32LastModifiedTime not applied'));
}

const MAX_PROP_VALUE_BYTES = 64 * 1024;
const MAX_PROPS_PER_REQUEST = 256;

/**
 * PROPPATCH: dead properties are set and removed through vfs.patchProps in one call, so
 * the whole request succeeds or nothing changes (RFC 4918 §9.2). Any DAV: live property
 * is protected: that one answers 403 and every other 424, and nothing is stored.
 * Windows' Win32* properties are ordinary dead properties here.
 */
export async function handleProppatch(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path } = ctx;
  const root = parseXml(await readSmallBody(req, ctx.maxBodyBytes), ctx.xmlLimits);
  if (!root || root.ns !== DAV_NS || root.local !== 'propertyupdate') throw new HttpError(400, 'expected DAV:propertyupdate');
  if (isFinderJunk(path)) throw new HttpError(404, 'not stored');
  const attr = await vfs.getattr(path);
  await checkIfHeader(ctx, attr);
  checkPreconditions(req, attr, false);
  ctx.locks.assertCanModify(path, ctx.tokens);

  // Apply in document order: a later set/remove of the same name wins.
  const final = new Map<string, { op: 'set' | 'remove'; prop: DeadProp }>();
  const order: PropOut[] = [];
  const forbidden: PropOut[] = [];
  for (const action of childElements(root)) {
    if (action.ns !== DAV_NS || (action.local !== 'set' && action.local !== 'remove')) continue;
    for (const propEl of childElements(action)) {
      if (propEl.ns !== DAV_NS || propEl.local !== 'prop') continue;
      for (const p of childElements(propEl)) {
        const key = `{${p.ns}}${p.local}`;
        const out = { ns: p.ns, name: p.local };
        if (!final.has(key) && !forbidden.some((f) => f.ns === p.ns && f.name === p.local)) order.push(out);
        if (p.ns === DAV_NS && LIVE_PROPS.has(p.local)) {
          forbidden.push(out);
          continue;
        }
        const value = action.local === 'set' ? serializeChildren(p.children) : '';
        if (Buffer.byteLength(value) > MAX_PROP_VALUE_BYTES) throw new HttpError(413, `property value larger than ${MAX_PROP_VALUE_BYTES} bytes`);
        final.set(key, { op: action.local, prop: { ns: p.ns, name: p.local, value } });
      }
    }
  }
  if (order.length > MAX_PROPS_PER_REQUEST) throw new HttpError(413, `more than ${MAX_PROPS_PER_REQUEST} properties in one PROPPATCH`);
  const href = hrefFor(path, attr.type === 'dir');
  if (forbidden.length > 0) {
    const others = order.filter((o) => !forbidden.includes(o));
    sendXml(
      res,
      207,
      `<D:multistatus xmlns:D="DAV:">${renderResponse(
        href,
        new Map([
          [403, forbidden],
          [424, others],
        ]),
      )}</D:multistatus>`,
    );
    return;
  }
  const set = [...final.values()].filter((f) => f.op === 'set').map((f) => f.prop);
  const remove = [...final.values()].filter((f) => f.op === 'remove').map((f) => ({ ns: f.prop.ns, name: f.prop.name }));
  await vfs.patchProps(path, set, remove);
  await applyWin32Mtime(ctx, set);
  sendXml(res, 207, `<D:multistatus xmlns:D="DAV:">${renderResponse(href, new Map([[200, order]]))}</D:multistatus>`);
}
