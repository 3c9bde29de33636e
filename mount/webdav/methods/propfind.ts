import type { Attr, DeadProp, DirEntry, StatFs, Vfs } from '../../vfs/types';
import type { Ctx } from '../context';
import { readDepth, readSmallBody } from '../context';
import { HttpError } from '../http-error';
import { isFinderJunk, isHiddenName, STALE_UPLOAD_MS } from '../junk';
import { followLink, servedTarget } from '../links';
import { renderResponse, XML_HEAD, type PropOut } from '../multistatus';
import { writeChunk } from '../../../core/chunk-stream';
import { hrefFor, joinPath } from '../paths';
import { ALLPROP_LIVE, LIVE_PROPS, liveProp, QUOTA_PROPS, quotaProp } from '../props';
import { childElements, DAV_NS, findChild, parseXml } from '../xml';

type Request = { kind: 'allprop'; include: { ns: string; name: string }[] } | { kind: 'propname' } | { kind: 'prop'; props: { ns: string; name: string }[] };

function parseRequest(body: Buffer, ctx: Ctx): Request {
  const root = parseXml(body, ctx.xmlLimits);
  if (!root) return { kind: 'allprop', include: [] };
  if (root.ns !== DAV_NS || root.local !== 'propfind') throw new HttpError(400, 'expected DAV:propfind');
  const kids = childElements(root).filter((c) => c.ns === DAV_NS);
  const prop = findChild(root, DAV_NS, 'prop');
  if (prop) return { kind: 'prop', props: childElements(prop).map((e) => ({ ns: e.ns, name: e.local })) };
  if (findChild(root, DAV_NS, 'propname')) return { kind: 'propname' };
  if (findChild(root, DAV_NS, 'allprop')) {
    const inc = findChild(root, DAV_NS, 'include');
    return { kind: 'allprop', include: inc ? childElements(inc).map((e) => ({ ns: e.ns, name: e.local })) : [] };
  }
  throw new HttpError(400, `propfind needs prop, propname or allprop (got ${kids.map((k) => k.local).join(', ') || 'nothing'})`);
}

/** What the responses of one PROPFIND share. */
interface Propfind {
  ctx: Ctx;
  request: Request;
  /** Whether dead properties can be part of the answer (else they are never fetched). */
  wantsDead: boolean;
  statfsCache: Map<string, StatFs>;
}

/** The quota property `name` when it is one, else undefined. */
async function quotaOf(pf: Propfind, name: { ns: string; name: string }, p: string): Promise<PropOut | undefined> {
  if (name.ns !== DAV_NS || !(QUOTA_PROPS as readonly string[]).includes(name.name)) return undefined;
  return quotaProp(name.name, p, pf.ctx.vfs, pf.statfsCache);
}

/** The properties found (200) and missing (404) for one resource, as the request asks. */
async function propsOf(pf: Propfind, p: string, a: Attr): Promise<{ ok: PropOut[]; missing: PropOut[] }> {
  const { ctx, request } = pf;
  const dead: DeadProp[] = pf.wantsDead && a.ino !== 0 ? await ctx.vfs.getProps(p).catch(() => []) : [];
  const ok: PropOut[] = [];
  const missing: PropOut[] = [];
  if (request.kind === 'propname') {
    for (const n of ALLPROP_LIVE) if (n !== 'getcontentlength' || a.type !== 'dir') ok.push({ ns: DAV_NS, name: n });
    for (const d of dead) ok.push({ ns: d.ns, name: d.name });
  } else if (request.kind === 'allprop') {
    for (const n of ALLPROP_LIVE) {
      const v = liveProp(n, p, a, ctx.locks);
      if (v) ok.push(v);
    }
    for (const d of dead) ok.push({ ns: d.ns, name: d.name, xml: d.value });
    for (const inc of request.include) {
      const v = await quotaOf(pf, inc, p);
      if (v) ok.push(v);
    }
  } else {
    for (const want of request.props) {
      let v: PropOut | undefined;
      if (want.ns === DAV_NS && (QUOTA_PROPS as readonly string[]).includes(want.name)) v = await quotaOf(pf, want, p).catch(() => undefined);
      else if (want.ns === DAV_NS && LIVE_PROPS.has(want.name)) v = liveProp(want.name, p, a, ctx.locks);
      else {
        const d = dead.find((x) => x.ns === want.ns && x.name === want.name);
        if (d) v = { ns: d.ns, name: d.name, xml: d.value };
      }
      if (v) ok.push(v);
      else missing.push({ ns: want.ns, name: want.name });
    }
  }
  return { ok, missing };
}

/** One `<D:response>`. */
async function render(pf: Propfind, p: string, a: Attr): Promise<string> {
  const { ok, missing } = await propsOf(pf, p, a);
  return renderResponse(
    hrefFor(p, a.type === 'dir'),
    new Map([
      [200, ok],
      [404, missing],
    ]),
  );
}

/**
 * PROPFIND with Depth 0 or 1 (infinity is refused with 403 propfind-finite-depth, so one
 * request can never walk a whole drive). The 207 body is streamed one response at a time
 * with backpressure, so a 10,000-entry collection is never held as one string. Dead
 * properties are fetched only when the request can return them.
 */
export async function handlePropfind(ctx: Ctx): Promise<void> {
  const { vfs, req, res, path } = ctx;
  const depth = readDepth(req, 'infinity');
  if (depth === 'infinity') throw new HttpError(403, 'Depth: infinity is not supported', 'propfind-finite-depth');
  const request = parseRequest(await readSmallBody(req, ctx.maxBodyBytes), ctx);
  const linked = await servedTarget(vfs, path);
  const attr = linked.attr;
  const wantsDead = request.kind !== 'prop' || request.props.some((p) => p.ns !== DAV_NS || !LIVE_PROPS.has(p.name));
  const pf: Propfind = { ctx, request, wantsDead, statfsCache: new Map() };
  const first = await render(pf, path, attr);
  const children = depth === 1 && attr.type === 'dir' ? await vfs.readdir(linked.path) : [];
  res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8' });
  if (!(await writeChunk(res, `${XML_HEAD}<D:multistatus xmlns:D="DAV:">\n${first}`))) return;
  let batch = '';
  for (const e of children) {
    const a = await shownChild(vfs, linked.path, e);
    if (!a) continue;
    batch += await render(pf, joinPath(path, e.name), a);
    if (batch.length >= 64 * 1024) {
      if (!(await writeChunk(res, batch))) return;
      batch = '';
    }
  }
  res.end(batch + '</D:multistatus>\n');
}

/**
 * What a listing shows of child `e` of `dir`: its attributes (a symlink's target's), or null
 * for an upload temporary (removed once stale), Finder junk, or a link leading outside.
 */
async function shownChild(vfs: Vfs, dir: string, e: DirEntry): Promise<Attr | null> {
  if (isHiddenName(e.name)) {
    // A daemon killed mid-PUT leaves its temporary behind; listings clean them up
    if (e.attr.mtimeMs < Date.now() - STALE_UPLOAD_MS) vfs.unlink(joinPath(dir, e.name)).catch(() => undefined);
    return null;
  }
  if (isFinderJunk(e.name)) return null;
  if (e.attr.type !== 'symlink') return e.attr;
  const f = await followLink(vfs, joinPath(dir, e.name), e.attr).catch(() => null);
  return f ? f.attr : null; // links that lead outside the location are not shown
}
