import { constants as C, createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Db } from '../../index/db';
import { fingerprintOfDer, type NodeKeys } from '../../core/node-identity';
import { FsError, toFsError, type FsErrorCode } from '../../core/fs-error';
import { openBeneath } from '../../core/beneath';
import { localVersion } from '../../core/local-stat';
import { ALPN_PAIR, ALPN_PEER } from '../../providers/peer/peer-client';
import { Admission, sourceKey, type AdmissionLimits } from './peer-admission';
import { acceptPairing, PairRateLimit } from '../../app/peer/pairing';
import { PeerStore } from '../../index/peer-store';
import type { NodeInfo } from '../../core/peer-protocol';
import { ServeIndex } from './serve-index';

export interface PeerServerOptions {
  host: string;
  port: number;
  db: Db;
  keys: NodeKeys;
  name: string;
  log: Logger;
  /** vdfs's own state folders (home, cache, staging): never served, even inside a shared location. */
  statePaths?: readonly string[];
  /**
   * Milliseconds a connection may take to finish its TLS handshake, and then each request's
   * headers and body (`peer.requestTimeout`; default 30 s). Also the keep-alive idle limit.
   */
  requestTimeoutMs?: number;
  /** Connection caps before authentication (default DEFAULT_ADMISSION). */
  admission?: AdmissionLimits;
}

/** The running peer server. `close` ends every connection. */
export interface PeerServer {
  url: string;
  close(): Promise<void>;
}

const HASH_RE = /^[0-9a-f]{64}$/;
const MAX_URL = 2048;
const MAX_PAIR_BODY = 16 * 1024;
const MAX_WAIT_S = 30;
const MAX_LIMIT = 5000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** All connections, paired ones included: far below the usual 1024 descriptors a process gets. */
const MAX_CONNECTIONS = 512;

const STATUS: Partial<Record<FsErrorCode, number>> = {
  ENOENT: 404, EACCES: 403, EPERM: 403, EINVAL: 400, ENAMETOOLONG: 414, EBUSY: 429, ESTALE: 409, ENOTSUP: 501, EHOSTDOWN: 503, EFBIG: 413,
};

type Who = { peer: string } | { pairing: true };

/**
 * HTTPS with mutual TLS for paired nodes. Every client must present a certificate; in the TLS
 * `secureConnection` handler (before the HTTP parser sees a byte) a certificate whose SHA-256 is
 * not a paired node's is disconnected — except on ALPN `vdfs-pair/1`, where the only thing it may
 * do is `POST /v1/pair` with a token. Revoked peers (`vdfs peer rm`, from any process) lose
 * their open connections within a second. Throws FsError EADDRINUSE-like EBUSY / EACCES at start.
 */
export async function startPeerServer(o: PeerServerOptions): Promise<PeerServer> {
  const peers = new PeerStore(o.db);
  const index = new ServeIndex(o.db, o.statePaths);
  const limiter = new PairRateLimit();
  const who = new WeakMap<object, Who>();
  const sockets = new Map<TLSSocket, string>();
  let paired = new Set<string>();
  const refreshPaired = () => (paired = new Set(peers.list().map((p) => p.id)));
  refreshPaired();
  const lastTouch = new Map<string, number>();

  const admission = new Admission(o.admission);
  // Nobody gets to hold a socket without finishing what it started: the TLS handshake, then
  // each request (headers and body; a long-poll or a blob stream is the *response*, not covered).
  const stallMs = o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const server = https.createServer({
    key: o.keys.key, cert: o.keys.cert, requestCert: true, rejectUnauthorized: false,
    ALPNProtocols: [ALPN_PEER, ALPN_PAIR], maxHeaderSize: 8192, minVersion: 'TLSv1.3',
    handshakeTimeout: stallMs,
    // How often Node checks the header/request timers (default 30 s would double the limit).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(stallMs / 4))),
  });
  server.headersTimeout = stallMs;
  server.requestTimeout = stallMs;
  server.keepAliveTimeout = stallMs;
  // No byte either way for this long, even mid-response: a long-poll answers within MAX_WAIT_S.
  server.timeout = MAX_WAIT_S * 1000 + stallMs;
  server.maxConnections = MAX_CONNECTIONS;

  server.prependListener('connection', (sock: Socket) => {
    if (!admission.admit(sock)) o.log.warn({ remote: sock.remoteAddress }, 'peer: refused a connection: too many unauthenticated connections from this source');
  });

  // Node's header timer starts at the first byte: a client that finishes the handshake and
  // then says nothing is cut off here.
  const firstRequest = new WeakMap<object, NodeJS.Timeout>();
  server.on('secureConnection', (sock: TLSSocket) => {
    if (sock.destroyed) return;
    const timer = setTimeout(() => sock.destroy(), stallMs);
    timer.unref();
    firstRequest.set(sock, timer);
    sock.once('close', () => clearTimeout(timer));
  });

  server.prependListener('secureConnection', (sock: TLSSocket) => {
    const cert = sock.getPeerCertificate(false);
    const fp = cert?.raw ? fingerprintOfDer(cert.raw) : '';
    if (fp && (paired.has(fp) || refreshPaired().has(fp))) {
      admission.release(sock);
      who.set(sock, { peer: fp });
      sockets.set(sock, fp);
      sock.once('close', () => sockets.delete(sock));
    } else if (fp && sock.alpnProtocol === ALPN_PAIR) {
      who.set(sock, { pairing: true });
    } else {
      o.log.warn({ remote: sock.remoteAddress, cert: fp ? fp.slice(0, 16) : null }, 'peer: refused a connection: certificate not paired');
      sock.destroy();
    }
  });
  server.on('tlsClientError', (err, sock) => {
    o.log.info({ remote: sock.remoteAddress, err: err.message }, 'peer: TLS handshake failed');
  });

  // Revocation from another process (vdfs peer rm) shows in the index: close its connections.
  const sweep = setInterval(() => {
    try {
      refreshPaired();
    } catch {
      return; // busy index: next time
    }
    for (const [sock, fp] of sockets) {
      if (!paired.has(fp)) {
        o.log.warn({ peer: fp.slice(0, 16) }, 'peer: revoked: closing its connection');
        sock.destroy();
        sockets.delete(sock);
      }
    }
  }, 500);
  sweep.unref();

  // Long-polls wait for the change log to move (written by this daemon or by a CLI scan).
  const waiters = new Set<() => void>();
  let lastHead = index.headSeq();
  const ticker = setInterval(() => {
    if (waiters.size === 0) return;
    let head: number;
    try {
      head = index.headSeq();
    } catch {
      return;
    }
    if (head !== lastHead) {
      lastHead = head;
      for (const w of [...waiters]) w();
    }
  }, 100);
  ticker.unref();
  const waitForChange = (req: IncomingMessage, since: number, ms: number) =>
    new Promise<void>((resolve) => {
      if (index.headSeq() > since) return resolve();
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        req.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
      req.once('close', done);
    });

  const fail = (res: ServerResponse, req: IncomingMessage, err: unknown, peer: string | undefined) => {
    const fe = toFsError(err, 'peer request');
    const status = STATUS[fe.code] ?? 500;
    const level = status >= 500 ? 'error' : 'warn';
    o.log[level]({ peer: peer?.slice(0, 16), remote: req.socket.remoteAddress, method: req.method, url: req.url?.slice(0, 200), status, code: fe.code }, `peer: refused: ${fe.message}`);
    if (res.headersSent) return void res.destroy();
    const body = JSON.stringify({ code: fe.code, message: fe.message.replace(/^[A-Z]+: /, '') });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const sendJson = (res: ServerResponse, value: unknown) => {
    const body = JSON.stringify(value);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    clearTimeout(firstRequest.get(req.socket));
    const w = who.get(req.socket);
    if (!w) return void req.socket.destroy();
    const peer = 'peer' in w ? w.peer : undefined;
    void (async () => {
      if ((req.url ?? '').length > MAX_URL) throw new FsError('ENAMETOOLONG', 'request URL too long');
      const url = new URL(req.url ?? '/', 'https://peer');
      if ('pairing' in w) {
        if (req.method !== 'POST' || url.pathname !== '/v1/pair') throw new FsError('EACCES', 'a connection with an unpaired certificate may only pair');
        return handlePair(req, res);
      }
      if (!paired.has(peer!)) throw new FsError('EACCES', 'not paired');
      // Every other endpoint is a GET/HEAD: a body is refused (and the connection closed) unread.
      if (req.headers['transfer-encoding'] || Number(req.headers['content-length'] ?? 0) > 0) {
        res.shouldKeepAlive = false;
        throw new FsError('EFBIG', 'this endpoint takes no request body');
      }
      const now = Date.now();
      if (now - (lastTouch.get(peer!) ?? 0) > 10_000) {
        lastTouch.set(peer!, now);
        try { peers.touch(peer!); } catch { /* busy index: only last_seen */ }
      }
      const p = url.pathname;
      const q = url.searchParams;
      if (req.method === 'GET' && p === '/v1/node') return sendJson(res, { id: o.keys.id, name: o.name, protocol: 1 } satisfies NodeInfo);
      if (req.method === 'GET' && p === '/v1/locations') return sendJson(res, index.locations(peer!));
      if (req.method === 'GET' && p === '/v1/snapshot') {
        const snap = index.snapshot(peer!, q.get('location') ?? '');
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        res.write(JSON.stringify(snap.header) + '\n');
        // In chunks, respecting back-pressure: a 100k-entry tree is tens of MB.
        for (let i = 0; i < snap.lines.length; i += 2000) {
          const text = snap.lines.slice(i, i + 2000).map((l) => JSON.stringify(l)).join('\n') + '\n';
          if (!res.write(text)) await new Promise((r) => res.once('drain', r));
        }
        return void res.end();
      }
      if (req.method === 'GET' && p === '/v1/changes') {
        const name = q.get('location') ?? '';
        const since = intParam(q.get('since'), 0, Number.MAX_SAFE_INTEGER, 'since');
        const limit = intParam(q.get('limit') ?? '1000', 1, MAX_LIMIT, 'limit');
        const wait = intParam(q.get('wait') ?? '0', 0, MAX_WAIT_S, 'wait');
        let page = index.changes(peer!, name, since, limit);
        if (page.changes.length === 0 && wait > 0) {
          await waitForChange(req, since, wait * 1000);
          if (req.socket.destroyed) return;
          page = index.changes(peer!, name, since, limit);
        }
        return sendJson(res, page);
      }
      if ((req.method === 'GET' || req.method === 'HEAD') && p.startsWith('/v1/blobs/')) return serveBlob(req, res, peer!, p.slice('/v1/blobs/'.length));
      throw new FsError('ENOENT', `no such endpoint ${req.method} ${p.slice(0, 100)} (content is served by hash only)`);
    })().catch((err) => fail(res, req, err, peer));
  });

  async function handlePair(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const addr = sourceKey(req.socket.remoteAddress);
    res.shouldKeepAlive = false; // one pairing attempt per connection
    if (!limiter.allowed(addr)) throw new FsError('EBUSY', 'too many pairing attempts; wait a minute');
    const chunks: Buffer[] = [];
    let size = 0;
    if (Number(req.headers['content-length'] ?? 0) > MAX_PAIR_BODY) throw new FsError('EFBIG', 'pairing request too large');
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > MAX_PAIR_BODY) throw new FsError('EFBIG', 'pairing request too large');
      chunks.push(c);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      limiter.failed(addr);
      throw new FsError('EINVAL', 'pairing request is not JSON');
    }
    const cert = (req.socket as TLSSocket).getPeerCertificate(false);
    try {
      const fp = fingerprintOfDer(cert.raw);
      const ans = acceptPairing(o.db, { id: o.keys.id, name: o.name }, fp, body, addr);
      refreshPaired();
      o.log.info({ peer: fp.slice(0, 16), remote: addr }, 'peer: paired');
      sendJson(res, ans);
      // This connection was for pairing only: the new peer reconnects as a paired node.
      res.once('finish', () => req.socket.end());
    } catch (err) {
      limiter.failed(addr);
      throw err;
    }
  }

  async function serveBlob(req: IncomingMessage, res: ServerResponse, peer: string, hash: string): Promise<void> {
    if (!HASH_RE.test(hash)) throw new FsError('EINVAL', 'blobs are named by their 64-hex-digit BLAKE3 hash');
    const f = index.blobFile(peer, hash);
    let fh;
    try {
      // Never through a symlink on the way: a directory swapped for one after the scan.
      fh = await openBeneath(f.root, f.rel, C.O_RDONLY);
    } catch (err) {
      throw new FsError('ESTALE', `blob ${hash.slice(0, 16)} is indexed but its file cannot be opened: ${(err as Error).message}`);
    }
    try {
      const st = await fh.stat({ bigint: true });
      // Not the indexed file (other inode, size or mtime): refuse rather than send bytes that
      // may not be the content this hash names.
      if (!st.isFile() || localVersion(st) !== f.version) throw new FsError('ESTALE', `blob ${hash.slice(0, 16)} changed on disk since it was indexed`);
      const range = parseRange(req.headers.range, f.size);
      if (range === 'unsatisfiable') {
        res.writeHead(416, { 'content-range': `bytes */${f.size}`, 'content-length': 0 });
        res.end();
        await fh.close();
        return;
      }
      const headers: Record<string, string | number> = { 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream', etag: `"${hash}"` };
      const length = range ? range.end - range.start + 1 : f.size;
      headers['content-length'] = length;
      if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${f.size}`;
      res.writeHead(range ? 206 : 200, headers);
      o.log.debug({ peer: peer.slice(0, 16), hash: hash.slice(0, 16), start: range?.start ?? 0, length }, 'peer: blob served');
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        await fh.close();
        return;
      }
      const stream = createReadStream('', { fd: fh, start: range?.start ?? 0, end: range?.end ?? f.size - 1, highWaterMark: 1 << 20, autoClose: true });
      fh = undefined; // the stream owns it now
      stream.on('error', () => res.destroy());
      res.on('close', () => stream.destroy());
      stream.pipe(res);
    } finally {
      await fh?.close();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new FsError('EBUSY', `${o.host}:${o.port} is already in use`) : toFsError(err, 'peer server')));
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `https://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(sweep);
        clearInterval(ticker);
        for (const w of [...waiters]) w();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function intParam(v: string | null, min: number, max: number, what: string): number {
  if (v === null || !/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) throw new FsError('EINVAL', `${what} must be a whole number from ${min} to ${max}`);
  return Number(v);
}

/** One `bytes=` range (first-last, first-, or -suffix); several ranges are refused. Throws EINVAL. */
export function parseRange(h: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (h === undefined) return undefined;
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw new FsError('EINVAL', `unsupported Range ${JSON.stringify(h.slice(0, 80))}: one bytes=FIRST-LAST range only`);
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (end < start && start < size) throw new FsError('EINVAL', `Range ${h} ends before it starts`);
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}
