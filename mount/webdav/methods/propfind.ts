import type { Attr, DeadProp, StatFs } from '../../vfs/types';
import type { Ctx } from '../context';
import { readDepth, readSmallBody, statOrNull } from '../context';
import { HttpError } from '../http-error';
import { isFinderJunk, isFinderMarker, isHiddenName, markerAttr, STALE_UPLOAD_MS } from '../junk';
import { followLink } from '../links';
import { renderResponse, writeChunk, XML_HEAD, type PropOut } from '../multistatus';
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
  if (isFinderJunk(path)) throw new HttpError(404, 'not stored'); // answered from memory, never from the index
  const found = isFinderMarker(path) ? await statOrNull(vfs, path) : await vfs.getattr(path);
  const linked = found ? await followLink(vfs, path, found) : { path, attr: markerAttr() };
  if (!linked) throw new HttpError(404, 'symlink to outside its location, or dangling');
  const attr = linked.attr;
  const statfsCache = new Map<string, StatFs>();
  const wantsDead = request.kind !== 'prop' || request.props.some((p) => p.ns !== DAV_NS || !LIVE_PROPS.has(p.name));

  const render = async (p: string, a: Attr): Promise<string> => {
    const dead: DeadProp[] = wantsDead && a.ino !== 0 ? await vfs.getProps(p).catch(() => []) : [];
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
        if (inc.ns === DAV_NS && (QUOTA_PROPS as readonly string[]).includes(inc.name)) {
          const v = await quotaProp(inc.name, p, vfs, statfsCache);
          if (v) ok.push(v);
        }
      }
    } else {
      for (const want of request.props) {
        let v: PropOut | undefined;
        if (want.ns === DAV_NS && (QUOTA_PROPS as readonly string[]).includes(want.name)) v = await quotaProp(want.name, p, vfs, statfsCache).catch(() => undefined);
        else if (want.ns === DAV_NS && LIVE_PROPS.has(want.name)) v = liveProp(want.name, p, a, ctx.locks);
        else {
          const d = dead.find((x) => x.ns === want.ns && x.name === want.name);
          if (d) v = { ns: d.ns, name: d.name, xml: d.value };
        }
        if (v) ok.push(v);
        else missing.push({ ns: want.ns, name: want.name });
      }
    }
    return renderResponse(
      hrefFor(p, a.type === 'dir'),
      new Map([
        [200, ok],
        [404, missing],
      ]),
    );
  };

  const first = await render(path, attr);
  const children = depth === 1 && attr.type === 'dir' ? await vfs.readdir(linked.path) : [];
  res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8' });
  if (!(await writeChunk(res, `${XML_HEAD}<D:multistatus xmlns:D="DAV:">\n${first}`))) return;
  let batch = '';
  for (const e of children) {
    if (isHiddenName(e.name)) {
      // A daemon killed mid-PUT leaves its temporary behind; listings clean them up
      if (e.attr.mtimeMs < Date.now() - STALE_UPLOAD_MS) vfs.unlink(joinPath(linked.path, e.name)).catch(() => undefined);
      continue;
    }
    if (isFinderJunk(e.name)) continue;
    const child = joinPath(path, e.name);
    let a = e.attr;
    if (a.type === 'symlink') {
      const f = await followLink(vfs, joinPath(linked.path, e.name), a).catch(() => null);
      if (!f) continue; // links that lead outside the location are not shown
      a = f.attr;
    }
    batch += await render(child, a);
    if (batch.length >= 64 * 1024) {
      if (!(await writeChunk(res, batch))) return;
      batch = '';
    }
  }
  res.end(batch + '</D:multistatus>\n');
}
