/**
 * A loopback server speaking the Google Drive v3 REST subset vdfs uses (files.list with q,
 * fields and paging; files.get metadata, alt=media with Range; export; changes; resumable
 * uploads; files.update with add/removeParents; trash; bearer tokens) plus an OAuth token
 * endpoint. In-memory. It runs in a child process (`startDriveServer`) because the tests call
 * the CLI with spawnSync, which would block a server living in the test's own event loop; the
 * test drives it through `/__admin/*` routes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { ROOT } from './cli';

export const FOLDER = 'application/vnd.google-apps.folder';
export const GDOC = 'application/vnd.google-apps.document';
export const SHORTCUT = 'application/vnd.google-apps.shortcut';

interface DFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  trashed: boolean;
  content?: Buffer;
  version: number;
  createdTime: string;
  modifiedTime: string;
  shortcutDetails?: { targetId: string; targetMimeType: string };
}
interface Change {
  token: number;
  fileId: string;
}
interface Fault {
  status: number;
  reason: string;
  /** Matches requests whose path and query contain it. */
  path?: string;
  /** A redirect instead of an error: the next download is answered 302 to this URL ('self': the same URL with &redirected=1). */
  redirect?: string;
  /** A cut instead of an error: the next download (alt=media) of more than this many bytes sends its head and this many bytes, then the connection is destroyed. */
  cutAfter?: number;
}
interface Session {
  id: string;
  fileId?: string;
  meta: Partial<DFile>;
  parts: Buffer[];
  received: number;
}

// ---------------------------------------------------------------------------------------
// The server (child process side).

// Like Drive, md5 is computed once per content, not on every metadata request.
const md5s = new WeakMap<Buffer, string>();
function md5Of(b: Buffer): string {
  let h = md5s.get(b);
  if (!h) {
    h = createHash('md5').update(b).digest('hex');
    md5s.set(b, h);
  }
  return h;
}

class Drive {
  files = new Map<string, DFile>();
  changes: Change[] = [];
  tokens = new Set<string>(['test-token']);
  refresh = new Map<string, string>([['test-refresh', 'test-token']]);
  codes = new Map<string, { challenge: string; redirect: string }>();
  faults: Fault[] = [];
  sessions = new Map<string, Session>();
  counts: Record<string, number> = {};
  /** The Range header of every download (alt=media), '' for none, since the last reset. */
  ranges: string[] = [];
  seq = 0;
  clock = Date.parse('2026-01-01T00:00:00Z');

  constructor() {
    this.add({ id: 'root', name: 'My Drive', mimeType: FOLDER, parents: [] });
  }

  now(): string {
    this.clock += 1000;
    return new Date(Math.max(this.clock, Date.now())).toISOString();
  }
  newId(): string {
    return `id${(++this.seq).toString(36)}${randomBytes(10).toString('base64url')}`;
  }
  touch(f: DFile): void {
    f.version++;
    f.modifiedTime = this.now();
    this.changes.push({ token: this.changes.length + 2, fileId: f.id });
  }
  add(p: Partial<DFile> & { name: string; mimeType: string; parents: string[] }): DFile {
    const t = this.now();
    const f: DFile = { id: p.id ?? this.newId(), trashed: false, version: 0, createdTime: t, modifiedTime: t, ...p } as DFile;
    this.files.set(f.id, f);
    this.touch(f);
    return f;
  }
  children(id: string): DFile[] {
    return [...this.files.values()].filter((f) => f.parents.includes(id) && !f.trashed);
  }
  /** Admin: the folder at a slash path under `base` (created when missing; first match by name). */
  folder(base: string, parts: string[]): string {
    let cur = base;
    for (const p of parts) {
      const hit = this.children(cur).find((f) => f.name === p && f.mimeType === FOLDER);
      cur = hit ? hit.id : this.add({ name: p, mimeType: FOLDER, parents: [cur] }).id;
    }
    return cur;
  }
  json(f: DFile): Record<string, unknown> {
    const o: Record<string, unknown> = {
      kind: 'drive#file',
      id: f.id,
      name: f.name,
      mimeType: f.mimeType,
      parents: f.parents,
      trashed: f.trashed,
      version: String(f.version),
      createdTime: f.createdTime,
      modifiedTime: f.modifiedTime,
    };
    if (f.content) {
      o.size = String(f.content.length);
      o.md5Checksum = md5Of(f.content);
      o.headRevisionId = `r${f.version}`;
    }
    if (f.shortcutDetails) o.shortcutDetails = f.shortcutDetails;
    return o;
  }
}

/** Evaluates the `q` subset: and/or/not, parentheses, `'x' in parents`, `field = 'v'`, `!=`, `contains`. */
function evalQuery(q: string, f: DFile): boolean {
  const toks = q.match(/'(?:\\.|[^'\\])*'|\(|\)|!=|=|[A-Za-z_]+/g) ?? [];
  let i = 0;
  const str = (t: string) => t.slice(1, -1).replace(/\\(.)/g, '$1');
  const val = (field: string): unknown => (f as unknown as Record<string, unknown>)[field];
  const primary = (): boolean => {
    const t = toks[i++];
    if (t === '(') {
      const v = or();
      i++;
      return v;
    }
    if (t === 'not') return !primary();
    if (t.startsWith("'")) {
      const v = str(t);
      i++;
      /* in */ const field = toks[i++];
      return (val(field) as string[]).includes(v);
    }
    const op = toks[i++];
    const rt = toks[i++];
    const rv: unknown = rt.startsWith("'") ? str(rt) : rt === 'true' ? true : rt === 'false' ? false : rt;
    if (op === '=') return val(t) === rv;
    if (op === '!=') return val(t) !== rv;
    if (op === 'contains') return String(val(t)).includes(String(rv));
    throw new Error(`unsupported q near ${t} ${op}`);
  };
  const and = (): boolean => {
    let v = primary();
    while (toks[i] === 'and') {
      i++;
      const r = primary();
      v = v && r;
    }
    return v;
  };
  const or = (): boolean => {
    let v = and();
    while (toks[i] === 'or') {
      i++;
      const r = and();
      v = v || r;
    }
    return v;
  };
  return or();
}

/** Keeps the fields named in a `fields` expression like `nextPageToken,files(id,name)`. */
function pick(obj: Record<string, unknown>, fields: string | null): Record<string, unknown> {
  if (!fields || fields === '*') return obj;
  const out: Record<string, unknown> = {};
  let depth = 0;
  let cur = '';
  const parts: string[] = [];
  for (const ch of fields) {
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
      continue;
    }
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    cur += ch;
  }
  parts.push(cur);
  for (const p of parts.map((s) => s.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9]+)(?:\((.*)\))?$/.exec(p);
    if (!m || !(m[1] in obj)) continue;
    const v = obj[m[1]];
    out[m[1]] = m[2] === undefined ? v : Array.isArray(v) ? v.map((x) => pick(x as Record<string, unknown>, m[2])) : pick(v as Record<string, unknown>, m[2]);
  }
  return out;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((res, rej) => {
    const c: Buffer[] = [];
    req.on('data', (d: Buffer) => c.push(d));
    req.on('end', () => res(Buffer.concat(c)));
    req.on('error', rej);
  });
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  const buf = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-length': String(buf.length), ...(Buffer.isBuffer(body) ? {} : { 'content-type': 'application/json' }), ...headers });
  res.end(buf);
}

function apiError(res: ServerResponse, status: number, reason: string, message: string): void {
  send(res, status, { error: { code: status, message, errors: [{ domain: 'global', reason, message }] } });
}

const EXPORTS: Record<string, (f: DFile) => Buffer> = {
  'application/pdf': (f) => Buffer.from(`%PDF-1.4 export of ${f.name} v${f.version}\n`),
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': (f) => Buffer.from(`DOCX export of ${f.name} v${f.version}\n`),
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': (f) => Buffer.from(`XLSX export of ${f.name} v${f.version}\n`),
  'text/plain': (f) => Buffer.from(`text of ${f.name} v${f.version}\n`),
};

function applyMeta(d: Drive, f: DFile, meta: Record<string, unknown>, url: URL): void {
  if (typeof meta.name === 'string') f.name = meta.name;
  if (typeof meta.trashed === 'boolean') f.trashed = meta.trashed;
  const add = url.searchParams.get('addParents');
  const remove = url.searchParams.get('removeParents');
  if (remove) f.parents = f.parents.filter((p) => !remove.split(',').includes(p));
  if (add) for (const p of add.split(',')) if (!f.parents.includes(p)) f.parents.push(p);
  d.touch(f);
}

async function handle(d: Drive, req: IncomingMessage, res: ServerResponse, base: string): Promise<void> {
  const url = new URL(req.url ?? '/', base);
  const path = url.pathname;
  const method = req.method ?? 'GET';
  if (path.startsWith('/__admin/')) {
    // The test's event loop is blocked for seconds by spawnSync'd CLI calls, so it never sees this
    // server close an idle keep-alive socket and would reuse a dead one ("other side closed").
    res.setHeader('Connection', 'close');
    return admin(d, path.slice(9), JSON.parse((await readBody(req)).toString() || '{}') as Record<string, unknown>, res);
  }
  if (path === '/token') {
    const form = new URLSearchParams((await readBody(req)).toString());
    d.counts.token = (d.counts.token ?? 0) + 1;
    if (form.get('grant_type') === 'refresh_token') {
      const access = d.refresh.get(form.get('refresh_token') ?? '');
      if (!access) return send(res, 400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
      const fresh = `tok-${randomBytes(6).toString('hex')}`;
      d.tokens.add(fresh);
      d.refresh.set(form.get('refresh_token')!, fresh);
      return send(res, 200, { access_token: fresh, expires_in: 3599, token_type: 'Bearer' });
    }
    if (form.get('grant_type') === 'authorization_code') {
      const c = d.codes.get(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      if (!c || createHash('sha256').update(verifier).digest('base64url') !== c.challenge || c.redirect !== form.get('redirect_uri'))
        return send(res, 400, { error: 'invalid_grant', error_description: 'bad code, verifier or redirect_uri' });
      d.codes.delete(form.get('code')!);
      d.tokens.add('code-token');
      d.refresh.set('code-refresh', 'code-token');
      return send(res, 200, { access_token: 'code-token', refresh_token: 'code-refresh', expires_in: 3599, token_type: 'Bearer' });
    }
    return send(res, 400, { error: 'unsupported_grant_type' });
  }
  if (path === '/auth') {
    // The consent screen, answered at once: redirect with a code bound to the PKCE challenge.
    const code = `code-${randomBytes(6).toString('hex')}`;
    const redirect = url.searchParams.get('redirect_uri') ?? '';
    d.codes.set(code, { challenge: url.searchParams.get('code_challenge') ?? '', redirect });
    if (redirect.startsWith('urn:') || !redirect) return send(res, 200, Buffer.from(code));
    res.writeHead(302, { location: `${redirect}?code=${code}&state=${encodeURIComponent(url.searchParams.get('state') ?? '')}` });
    return void res.end();
  }
  const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  if (!auth || !d.tokens.has(auth[1])) return apiError(res, 401, 'authError', 'Invalid Credentials');
  const fault = d.faults.findIndex((f) => f.cutAfter === undefined && f.redirect === undefined && (!f.path || (path + url.search).includes(f.path)));
  if (fault >= 0) {
    const [f] = d.faults.splice(fault, 1);
    d.counts[`fault ${f.status}`] = (d.counts[`fault ${f.status}`] ?? 0) + 1;
    await readBody(req);
    return apiError(res, f.status, f.reason, f.reason === 'userRateLimitExceeded' ? 'User Rate Limit Exceeded' : `injected ${f.status}`);
  }
  const key = `${method} ${path.replace(/\/files\/[^/]+/, '/files/ID')}${url.searchParams.get('alt') ? '?alt' : ''}`;
  d.counts[key] = (d.counts[key] ?? 0) + 1;
  const fields = url.searchParams.get('fields');

  if (path === '/drive/v3/changes/startPageToken') return send(res, 200, { startPageToken: String(d.changes.length + 2) });
  if (path === '/drive/v3/changes') {
    const from = Number(url.searchParams.get('pageToken'));
    const size = Number(url.searchParams.get('pageSize') ?? 100);
    const list = d.changes.filter((c) => c.token >= from).slice(0, size);
    const more = d.changes.filter((c) => c.token >= from).length > size;
    const changes = list.map((c) => {
      const f = d.files.get(c.fileId);
      return { kind: 'drive#change', changeType: 'file', fileId: c.fileId, removed: !f, file: f ? d.json(f) : undefined };
    });
    const body: Record<string, unknown> = { changes };
    if (more) body.nextPageToken = String(list[list.length - 1].token + 1);
    else body.newStartPageToken = String(d.changes.length + 2);
    return send(res, 200, pick(body, fields));
  }
  if (path === '/drive/v3/files' && method === 'GET') {
    const q = url.searchParams.get('q') ?? '';
    const size = Math.min(Number(url.searchParams.get('pageSize') ?? 100), 1000);
    const start = Number(url.searchParams.get('pageToken') ?? 0);
    const all = [...d.files.values()].filter((f) => f.id !== 'root' && (!q || evalQuery(q, f))).sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    const page = all.slice(start, start + size);
    const body: Record<string, unknown> = { kind: 'drive#fileList', files: page.map((f) => d.json(f)) };
    if (start + size < all.length) body.nextPageToken = String(start + size);
    return send(res, 200, pick(body, fields));
  }
  if (path === '/drive/v3/files' && method === 'POST') {
    const meta = JSON.parse((await readBody(req)).toString() || '{}') as Partial<DFile>;
    const f = d.add({
      name: meta.name ?? 'Untitled',
      mimeType: meta.mimeType ?? 'application/octet-stream',
      parents: meta.parents ?? ['root'],
      content: meta.mimeType === FOLDER ? undefined : Buffer.alloc(0),
    });
    return send(res, 200, pick(d.json(f), fields));
  }
  let m = /^\/drive\/v3\/files\/([^/]+)(\/export)?$/.exec(path);
  if (m) {
    const f = d.files.get(m[1]);
    if (!f) return apiError(res, 404, 'notFound', `File not found: ${m[1]}.`);
    if (m[2]) {
      const exp = EXPORTS[url.searchParams.get('mimeType') ?? ''];
      if (!f.mimeType.startsWith('application/vnd.google-apps.') || !exp) return apiError(res, 400, 'badRequest', 'export not supported');
      return send(res, 200, exp(f), { 'content-type': url.searchParams.get('mimeType')! });
    }
    if (method === 'PATCH') {
      applyMeta(d, f, JSON.parse((await readBody(req)).toString() || '{}') as Record<string, unknown>, url);
      return send(res, 200, pick(d.json(f), fields));
    }
    if (method === 'DELETE') {
      d.files.delete(f.id);
      d.changes.push({ token: d.changes.length + 2, fileId: f.id });
      return send(res, 204);
    }
    if (url.searchParams.get('alt') === 'media') {
      if (!f.content) return apiError(res, 403, 'fileNotDownloadable', 'Only files with binary content can be downloaded. Use Export with Docs Editors files.');
      const c = f.content;
      const redirect = d.faults.findIndex((x) => x.redirect !== undefined);
      if (redirect >= 0) {
        const [x] = d.faults.splice(redirect, 1);
        d.counts.redirect = (d.counts.redirect ?? 0) + 1;
        res.writeHead(302, { location: x.redirect === 'self' ? `${url.pathname}${url.search}&redirected=1` : x.redirect!, 'content-length': '0' });
        return void res.end();
      }
      d.ranges.push(String(req.headers.range ?? ''));
      const r = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
      if (r && Number(r[1]) >= c.length) return send(res, 416, Buffer.alloc(0), { 'content-range': `bytes */${c.length}` });
      const a = r ? Number(r[1]) : 0;
      const b = r ? Math.min(r[2] ? Number(r[2]) : c.length - 1, c.length - 1) : c.length - 1;
      const head: Record<string, string> = r
        ? { 'content-range': `bytes ${a}-${b}/${c.length}`, 'content-type': 'application/octet-stream' }
        : { 'content-type': 'application/octet-stream' };
      const cut = d.faults.findIndex((x) => x.cutAfter !== undefined && b - a + 1 > x.cutAfter && (!x.path || (path + url.search).includes(x.path)));
      if (cut >= 0) {
        const [x] = d.faults.splice(cut, 1);
        d.counts.cut = (d.counts.cut ?? 0) + 1;
        res.writeHead(r ? 206 : 200, { 'content-length': String(b - a + 1), ...head });
        res.write(c.subarray(a, Math.min(a + x.cutAfter!, b + 1)), () => res.destroy());
        return;
      }
      return send(res, r ? 206 : 200, c.subarray(a, b + 1), head);
    }
    return send(res, 200, pick(d.json(f), fields));
  }
  // Resumable uploads: start (POST create / PATCH update), then PUT bytes to the session.
  m = /^\/upload\/drive\/v3\/files(?:\/([^/]+))?$/.exec(path);
  if (m && url.searchParams.get('uploadType') === 'resumable') {
    const uid = url.searchParams.get('upload_id');
    if (!uid) {
      if (m[1] && !d.files.has(m[1])) return apiError(res, 404, 'notFound', `File not found: ${m[1]}.`);
      const meta = JSON.parse((await readBody(req)).toString() || '{}') as Partial<DFile>;
      const s: Session = { id: randomBytes(8).toString('hex'), fileId: m[1], meta, parts: [], received: 0 };
      d.sessions.set(s.id, s);
      const extra = [...url.searchParams]
        .filter(([k]) => k === 'addParents' || k === 'removeParents')
        .map(([k, v]) => `&${k}=${v}`)
        .join('');
      return send(res, 200, undefined, { location: `${base}upload/drive/v3/files${m[1] ? `/${m[1]}` : ''}?uploadType=resumable&upload_id=${s.id}${extra}` });
    }
    const s = d.sessions.get(uid);
    if (!s) return apiError(res, 404, 'notFound', 'upload session not found');
    const body = await readBody(req);
    const cr = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(String(req.headers['content-range'] ?? ''));
    const total = cr && cr[3] !== '*' ? Number(cr[3]) : undefined;
    if (cr?.[1] !== undefined) {
      if (Number(cr[1]) !== s.received) return send(res, 308, undefined, s.received ? { range: `bytes=0-${s.received - 1}` } : {});
      s.parts.push(body);
      s.received += body.length;
    } else if (!cr) {
      s.parts.push(body);
      s.received += body.length;
    }
    if (total === undefined ? cr !== null : s.received < total) return send(res, 308, undefined, s.received ? { range: `bytes=0-${s.received - 1}` } : {});
    d.sessions.delete(uid);
    const content = Buffer.concat(s.parts);
    let f = s.fileId ? d.files.get(s.fileId) : undefined;
    if (f) {
      f.content = content;
      if (s.meta.name) f.name = s.meta.name;
      applyMeta(d, f, {}, url);
    } else f = d.add({ name: s.meta.name ?? 'Untitled', mimeType: s.meta.mimeType ?? 'application/octet-stream', parents: s.meta.parents ?? ['root'], content });
    return send(res, s.fileId ? 200 : 201, pick(d.json(f), fields));
  }
  return apiError(res, 404, 'notFound', `no route ${method} ${path}`);
}

function admin(d: Drive, op: string, a: Record<string, unknown>, res: ServerResponse): void {
  const parts = (p: unknown) => String(p).split('/').filter(Boolean);
  const base = String(a.base ?? 'root');
  const at = (p: unknown) => {
    const ps = parts(p);
    return { parent: d.folder(base, ps.slice(0, -1)), name: ps[ps.length - 1] };
  };
  const find = (p: unknown) => {
    const { parent, name } = at(p);
    return d.children(parent).find((f) => f.name === name);
  };
  switch (op) {
    case 'mkdir':
      return send(res, 200, { id: d.folder(base, parts(a.path)) });
    case 'put': {
      // Replaces the first file of that name in place (same id, new version), unless `dup`.
      const { parent, name } = at(a.path);
      const content = Buffer.from(String(a.data ?? ''), 'base64');
      const old = a.dup ? undefined : d.children(parent).find((f) => f.name === name && f.mimeType !== FOLDER);
      if (old) {
        old.content = content;
        d.touch(old);
        return send(res, 200, { id: old.id });
      }
      return send(res, 200, { id: d.add({ name, mimeType: String(a.mimeType ?? 'application/octet-stream'), parents: [parent], content }).id });
    }
    case 'doc': {
      const { parent, name } = at(a.path);
      return send(res, 200, { id: d.add({ name, mimeType: String(a.mimeType ?? GDOC), parents: [parent] }).id });
    }
    case 'shortcut': {
      const { parent, name } = at(a.path);
      const target = d.files.get(String(a.targetId))!;
      return send(res, 200, { id: d.add({ name, mimeType: SHORTCUT, parents: [parent], shortcutDetails: { targetId: target.id, targetMimeType: target.mimeType } }).id });
    }
    case 'trash': {
      const f = find(a.path);
      if (f) {
        f.trashed = true;
        d.touch(f);
      }
      return send(res, 200, { ok: !!f });
    }
    case 'get': {
      const f = a.id ? d.files.get(String(a.id)) : find(a.path);
      return send(res, 200, f ? { ...d.json(f), data: f.content?.toString('base64') } : null);
    }
    case 'children':
      return send(
        res,
        200,
        d.children(a.id ? String(a.id) : d.folder(base, parts(a.path ?? ''))).map((f) => ({ ...d.json(f), data: f.content?.toString('base64') })),
      );
    case 'fault':
      for (let i = 0; i < Number(a.times ?? 1); i++) d.faults.push({ status: Number(a.status), reason: String(a.reason ?? 'backendError'), path: a.path as string | undefined });
      return send(res, 200, {});
    case 'cut':
      d.faults.push({ status: 0, reason: 'cut', path: a.path as string | undefined, cutAfter: Number(a.after) });
      return send(res, 200, {});
    case 'redirect':
      d.faults.push({ status: 302, reason: 'redirect', redirect: String(a.to) });
      return send(res, 200, {});
    case 'expire':
      // Access tokens stop working; refresh tokens still get new ones.
      d.tokens.clear();
      return send(res, 200, {});
    case 'ranges': {
      const r = d.ranges;
      d.ranges = [];
      return send(res, 200, r);
    }
    case 'revoke':
      d.tokens.clear();
      d.refresh.clear();
      return send(res, 200, {});
    case 'token':
      d.tokens.add(String(a.token));
      if (a.refresh) d.refresh.set(String(a.refresh), String(a.token));
      return send(res, 200, {});
    case 'counts': {
      const c = { ...d.counts };
      if (a.reset) d.counts = {};
      return send(res, 200, c);
    }
    default:
      return send(res, 404, { error: `no admin op ${op}` });
  }
}

function serve(port: number): void {
  const d = new Drive();
  const server = createServer((req, res) => {
    const base = `http://${req.headers.host}/`;
    handle(d, req, res, base).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, { error: { code: 500, message: err.message } });
    });
  });
  server.listen(port, '127.0.0.1', () => {
    const addr = server.address() as { port: number };
    process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
  });
}

if (require.main === module) serve(Number(process.argv[2] ?? 0));

// ---------------------------------------------------------------------------------------
// The test side.

export interface DriveFileInfo {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  version: string;
  md5Checksum?: string;
  size?: string;
  data?: string;
}

export interface DriveTestServer {
  /** The API root for `rootUrl` and `gdrive://...?root=` (ends with '/'). */
  root: string;
  port: number;
  /** A valid access token and refresh token (the token endpoint is `${root}token`). */
  token: string;
  refreshToken: string;
  /** Folders, files and docs at slash paths under `base` (a folder id, default 'root'). */
  mkdir(path: string, base?: string): Promise<string>;
  put(path: string, data: Buffer | string, opts?: { base?: string; dup?: boolean; mimeType?: string }): Promise<string>;
  doc(path: string, opts?: { base?: string; mimeType?: string }): Promise<string>;
  shortcut(path: string, targetId: string, base?: string): Promise<string>;
  trash(path: string, base?: string): Promise<void>;
  get(pathOrId: { path?: string; id?: string; base?: string }): Promise<DriveFileInfo | null>;
  children(opts: { id?: string; path?: string; base?: string }): Promise<DriveFileInfo[]>;
  /** The next `times` API requests (whose path and query contain `path`, if given: 'alt=media' for downloads) fail with `status`/`reason`. */
  fault(status: number, reason: string, times?: number, path?: string): Promise<void>;
  /** The next download (alt=media; whose path and query contain `path`, if given) of more than `after` bytes is cut after `after` bytes of its body. */
  cut(after: number, path?: string): Promise<void>;
  /** The next download is answered 302 to `to` ('self': the same URL with &redirected=1). */
  redirect(to: string): Promise<void>;
  /** Every access token stops working (401); the refresh token still gets a new one. */
  expire(): Promise<void>;
  /** The Range header of each download since the last call ('' for a whole-file one). */
  ranges(): Promise<string[]>;
  /** Every access and refresh token stops working (401 / invalid_grant). */
  revoke(): Promise<void>;
  addToken(token: string, refresh?: string): Promise<void>;
  /** Requests by route since the last reset (`fault STATUS` and `cut`: faults served, `token`: token endpoint calls). */
  counts(reset?: boolean): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** Starts the server in a child process on a free loopback port (or `port`). Needs the built dist/. */
export async function startDriveServer(port = 0): Promise<DriveTestServer> {
  const script = join(ROOT, 'dist', 'tests', 'helpers', 'drive-server.js');
  const real = __filename.endsWith('.js') ? __filename : script;
  const proc: ChildProcess = spawn(process.execPath, [real, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const bound = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error('the Drive test server did not start in 10 s'));
    }, 10_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve((JSON.parse(out.slice(0, out.indexOf('\n'))) as { port: number }).port);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Drive test server exited (${code}) before listening (${real})`));
    });
  });
  const root = `http://127.0.0.1:${bound}/`;
  const call = async <T>(op: string, body: Record<string, unknown>): Promise<T> => {
    const r = await fetch(`${root}__admin/${op}`, { method: 'POST', body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`drive admin ${op}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  };
  const b64 = (d: Buffer | string) => (typeof d === 'string' ? Buffer.from(d) : d).toString('base64');
  return {
    root,
    port: bound,
    token: 'test-token',
    refreshToken: 'test-refresh',
    mkdir: async (path, base) => (await call<{ id: string }>('mkdir', { path, base })).id,
    put: async (path, data, o = {}) => (await call<{ id: string }>('put', { path, data: b64(data), ...o })).id,
    doc: async (path, o = {}) => (await call<{ id: string }>('doc', { path, ...o })).id,
    shortcut: async (path, targetId, base) => (await call<{ id: string }>('shortcut', { path, targetId, base })).id,
    trash: async (path, base) => {
      await call('trash', { path, base });
    },
    get: (o) => call('get', o),
    children: (o) => call('children', o),
    fault: async (status, reason, times = 1, path) => {
      await call('fault', { status, reason, times, path });
    },
    cut: async (after, path) => {
      await call('cut', { after, path });
    },
    redirect: async (to) => {
      await call('redirect', { to });
    },
    expire: async () => {
      await call('expire', {});
    },
    ranges: () => call('ranges', {}),
    revoke: async () => {
      await call('revoke', {});
    },
    addToken: async (token, refresh) => {
      await call('token', { token, refresh });
    },
    counts: (reset) => call('counts', { reset }),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
    },
  };
}
