import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Vfs } from '../vfs/types';
import { scryptRuns, type WebdavUser } from './auth';
import { Authenticator, type WebdavCredential } from './authenticator';
import { readIfHeader, statOrNull, type Ctx } from './context';
import { HttpError, statusOf } from './http-error';
import { DEFAULT_LOCK_LIMITS, LockManager, type LockLimits } from './locks';
import { Metrics } from './metrics';
import { sendXml } from './multistatus';
import { decodeRequestPath, isLoopbackAddress, isLoopbackHost, otherNormalForms } from './paths';
import { DEFAULT_XML_LIMITS } from './xml';
import { handleCopyMove } from './methods/copy-move';
import { handleDelete } from './methods/delete';
import { handleGet } from './methods/get';
import { handleLock } from './methods/lock';
import { handleMkcol } from './methods/mkcol';
import { handleOptions } from './methods/options';
import { handlePropfind } from './methods/propfind';
import { handleProppatch } from './methods/proppatch';
import { handlePut } from './methods/put';
import { handleUnlock } from './methods/unlock';

/**
 * How to serve. startWebdav throws Error when `host` is not loopback and `users` or
 * `tls` is missing, and the listen error (EADDRINUSE, EACCES) when binding fails.
 */
export interface WebdavOptions {
  /** Address to bind; '127.0.0.1' unless the user asks for more (then users and tls are required). */
  host: string;
  /** 0 = any free port. */
  port: number;
  /** PEM strings. */
  tls?: { cert: string; key: string };
  /** Basic-auth users; `scrypt` comes from hashPassword() in mount/webdav/auth.ts. */
  users?: WebdavUser[];
  /** The home's generated credential (Digest or Basic). */
  credential?: WebdavCredential;
  /** Loopback only: serve without any credentials. Every local user and process gets in. */
  insecureNoAuth?: boolean;
  /** Lock timeout and count caps (default DEFAULT_LOCK_LIMITS). */
  lockLimits?: LockLimits;
  logger?: Logger;
  /** Largest XML request body (PROPFIND, PROPPATCH, LOCK); default 1 MiB. PUT bodies are streamed and not limited by this. */
  maxBodyBytes?: number;
  /** The status page at GET /~vdfs/ (behind the same auth); none when absent. Throws nothing the server cannot map (500). */
  statusPage?: () => { type: string; csp: string; body: string };
}

/** A running server. `close()` never rejects: running transfers get 2 s, then their sockets are cut. */
export interface WebdavServer {
  url: string;
  port: number;
  /** Stops accepting, ends idle connections, resolves when every request has finished. */
  close(): Promise<void>;
}

/**
 * Reserved URL prefix for the server's own endpoints. `~` is not allowed in location
 * names ([A-Za-z0-9._-]+), so `/~vdfs/...` can never shadow a location.
 */
export const SERVICE_PREFIX = '/~vdfs/';

/** The path as sent when it exists (or nothing matches); otherwise its NFC/NFD twin that exists. */
async function matchNormalForm(vfs: Vfs, vpath: string): Promise<string> {
  const others = otherNormalForms(vpath);
  if (others.length === 0 || (await statOrNull(vfs, vpath).catch(() => null))) return vpath;
  for (const p of others) if (await statOrNull(vfs, p).catch(() => null)) return p;
  return vpath;
}

type Handler = (ctx: Ctx) => Promise<void>;
const HANDLERS: Record<string, Handler> = {
  OPTIONS: handleOptions,
  GET: handleGet,
  HEAD: handleGet,
  PUT: handlePut,
  DELETE: handleDelete,
  MKCOL: handleMkcol,
  COPY: handleCopyMove,
  MOVE: handleCopyMove,
  PROPFIND: handlePropfind,
  PROPPATCH: handleProppatch,
  LOCK: handleLock,
  UNLOCK: handleUnlock,
};
/** Methods HTTP defines that a WebDAV resource here does not allow: 405, not 501. */
const NOT_ALLOWED = new Set([
  'POST',
  'PATCH',
  'TRACE',
  'CONNECT',
  'SEARCH',
  'REPORT',
  'ACL',
  'MKCALENDAR',
  'BIND',
  'UNBIND',
  'REBIND',
  'VERSION-CONTROL',
  'CHECKOUT',
  'CHECKIN',
  'UNCHECKOUT',
  'MKWORKSPACE',
  'UPDATE',
  'LABEL',
  'MERGE',
  'BASELINE-CONTROL',
  'MKACTIVITY',
  'ORDERPATCH',
]);

/** Refuses a setup that would expose the share: beyond loopback without users and TLS, or with no credentials at all. Throws Error. */
function checkExposure(host: string, loopback: boolean, users: WebdavUser[], opts: WebdavOptions): void {
  if (!loopback && users.length === 0) throw new Error(`WebDAV on ${host} (not loopback) needs users configured (Basic auth with scrypt hashes)`);
  if (!loopback && !opts.tls) throw new Error(`WebDAV on ${host} (not loopback) needs TLS: Windows and browsers send Basic auth passwords in clear text otherwise`);
  if (!loopback && opts.insecureNoAuth) throw new Error(`WebDAV without authentication is refused on ${host}: loopback only`);
  if (!opts.insecureNoAuth && users.length === 0 && !opts.credential) throw new Error('WebDAV needs credentials (a user or the home credential), even on loopback');
}

/** What every request of one server shares. */
interface ServerState {
  vfs: Vfs;
  opts: WebdavOptions;
  loopback: boolean;
  auth: Authenticator | null;
  locks: LockManager;
  metrics: Metrics;
  handles: { open: number };
  log?: Logger;
  maxBodyBytes: number;
  /** Requests being answered now (this one included). */
  inFlight: number;
}

/** Answers `/~vdfs/health` (before authentication); true when it did. */
function serveHealth(st: ServerState, res: ServerResponse, method: string, url: string): boolean {
  if (url !== SERVICE_PREFIX + 'health' || (method !== 'GET' && method !== 'HEAD')) return false;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify({ ok: true, openHandles: st.handles.open, locks: st.locks.size }) + '\n');
  return true;
}

/** Answers the status page `/~vdfs/` and `/~vdfs/metrics` (after authentication); true when it did. */
function serveOwnPages(st: ServerState, res: ServerResponse, method: string, url: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  if (url === SERVICE_PREFIX && st.opts.statusPage) {
    const page = st.opts.statusPage();
    res.writeHead(200, { 'Content-Type': page.type, 'Content-Security-Policy': page.csp, 'Cache-Control': 'no-store', 'Content-Length': String(Buffer.byteLength(page.body)) });
    res.end(method === 'HEAD' ? undefined : page.body);
    return true;
  }
  if (url === SERVICE_PREFIX + 'metrics') {
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(st.metrics.render({ openHandles: st.handles.open, locks: st.locks.size, inFlight: st.inFlight - 1, scryptRuns: scryptRuns.total }));
    return true;
  }
  return false;
}

/** One request, up to its handler. Throws HttpError or FsError (answered by sendFailure). */
async function route(st: ServerState, req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
  // DNS rebinding: a browser tricked into talking to us sends a foreign Host
  if (st.loopback && !isLoopbackHost(req.headers.host)) throw new HttpError(403, 'Host is not a loopback name');
  const url = req.url ?? '/';
  if (serveHealth(st, res, method, url)) return;
  const principal = st.auth ? await st.auth.check({ authorization: req.headers.authorization, method, url, address: req.socket.remoteAddress ?? '' }) : '';
  if (serveOwnPages(st, res, method, url)) return;
  const handler = HANDLERS[method];
  if (!handler) {
    if (NOT_ALLOWED.has(method)) throw new HttpError(405, `${method} is not allowed`, undefined, undefined, { Allow: Object.keys(HANDLERS).join(', ') });
    throw new HttpError(501, `${method} is not implemented`);
  }
  const decoded = decodeRequestPath(url === '*' && method === 'OPTIONS' ? '/' : url);
  const vpath = await matchNormalForm(st.vfs, decoded.vpath);
  const { ifLists, tokens } = readIfHeader(req);
  await handler({
    vfs: st.vfs,
    locks: st.locks,
    principal: `${principal}@${req.socket.remoteAddress ?? ''}`,
    req,
    res,
    path: vpath,
    trailingSlash: decoded.trailingSlash,
    ifLists,
    tokens,
    maxBodyBytes: st.maxBodyBytes,
    xmlLimits: DEFAULT_XML_LIMITS,
    metrics: st.metrics,
    log: st.log,
    handles: st.handles,
  });
}

/** Answers a failed request with its status (a DAV:error body for a precondition), or cuts the connection when the response had started. Never throws. */
function sendFailure(log: Logger | undefined, req: IncomingMessage, res: ServerResponse, method: string, err: unknown): void {
  const status = statusOf(err);
  if (status >= 500) log?.error({ err, method, url: req.url }, 'webdav request failed');
  else log?.debug({ method, url: req.url, status, msg: (err as Error).message }, 'webdav request refused');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | string[]> = err instanceof HttpError ? { ...err.headers } : {};
  // Unread request bodies (refused PUTs, 413s) are not worth draining
  if (!req.complete) headers['Connection'] = 'close';
  if (err instanceof HttpError && err.condition) {
    const inner = err.conditionXml ?? '';
    sendXml(res, status, `<D:error xmlns:D="DAV:"><D:${err.condition}${inner ? `>${inner}</D:${err.condition}>` : '/>'}</D:error>`, headers);
  } else {
    const body = Buffer.from(`${status} ${(err as Error).message ?? ''}\n`.replace(/[^\x20-\x7e\n]/g, '?'));
    res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
  if (!req.complete) req.resume();
}

/** The request listener: security headers, metrics, routing, and every failure answered. Never throws. */
function requestListener(st: ServerState): (req: IncomingMessage, res: ServerResponse) => void {
  const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const method = (req.method ?? '').toUpperCase();
    st.inFlight++;
    res.on('close', () => {
      st.inFlight--;
      st.metrics.observe(method, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
    });
    res.setHeader('Server', 'vdfs');
    // No response is ever sniffed into a script-running type; user content adds its own CSP
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Security-Policy', "sandbox; default-src 'none'");
    try {
      await route(st, req, res, method);
    } catch (err) {
      sendFailure(st.log, req, res, method, err);
    }
  };
  return (req, res) => {
    onRequest(req, res).catch((err) => {
      st.log?.error({ err }, 'webdav handler crashed');
      res.destroy();
    });
  };
}

/** The HTTP(S) server with its time limits, connection cap and answers to unparseable requests; `sockets` tracks open connections. */
function createServer(opts: WebdavOptions, metrics: Metrics, listener: (req: IncomingMessage, res: ServerResponse) => void, sockets: Set<Socket>): Server {
  const server: Server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, listener) : createHttpServer(listener);
  // Large uploads and downloads may take long: no overall request timeout, but headers must come quickly
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 30_000;
  // ...but a connection that sends or accepts nothing for 5 minutes is cut (slowloris)
  server.setTimeout(300_000, (socket: Socket) => socket.destroy());
  server.maxConnections = 1024;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // Requests Node's parser refused (bad syntax, unknown method, oversized headers)
    const line = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    metrics.observe('OTHER', Number(line.slice(0, 3)), 0);
    if (socket.writable) socket.end(`HTTP/1.1 ${line}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });
  return server;
}

/**
 * Starts the WebDAV front end over `vfs`. Throws Error (before listening) when binding a
 * non-loopback address without users and TLS, and the listen error (EADDRINUSE,
 * EACCES) when the port cannot be bound. Request-level errors never escape: each is
 * answered with a status, or the connection is cut when the response had started.
 */
export async function startWebdav(vfs: Vfs, opts: WebdavOptions): Promise<WebdavServer> {
  const host = opts.host || '127.0.0.1';
  const loopback = isLoopbackAddress(host);
  const users = opts.users ?? [];
  checkExposure(host, loopback, users, opts);
  const st: ServerState = {
    vfs,
    opts,
    loopback,
    auth: opts.insecureNoAuth ? null : new Authenticator(users, opts.credential),
    locks: new LockManager(opts.lockLimits ?? DEFAULT_LOCK_LIMITS),
    metrics: new Metrics(),
    handles: { open: 0 },
    log: opts.logger,
    maxBodyBytes: opts.maxBodyBytes ?? 1 << 20,
    inFlight: 0,
  };
  const sockets = new Set<Socket>();
  const server = createServer(opts, st.metrics, requestListener(st), sockets);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `${opts.tls ? 'https' : 'http'}://${urlHost}:${port}/`;
  st.log?.info({ url }, 'WebDAV serving');
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Give running transfers a moment, then cut them so close() always finishes
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 2000).unref();
      }),
  };
}
