import http from 'node:http';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { fingerprintOfDer, type NodeKeys } from '../../core/node-identity';
import { FsError, FS_ERROR_CODES, type FsErrorCode } from '../../core/fs-error';
import { ALPN_PEER, codeOfPeerStatus } from '../../core/peer-protocol';
import { Http1Conn, IdleConns, requestHead, routedReads, type ConnFailure, type Http1Answer, type OnRead } from '../../core/http1-conn';

export interface PeerResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface PeerRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** No byte for this long: EHOSTDOWN (a dead peer must fail over promptly). */
  idleMs?: number;
  /** request(): a longer answer is cut off with EFBIG (default MAX_ANSWER_BYTES). */
  maxBytes?: number;
  signal?: AbortSignal;
}

const CODES = new Set<string>(FS_ERROR_CODES);
/** Blob connections being opened at once (PeerClient.dialBlob). */
const MAX_DIALS = 4;

/** A blob connection's failures: the peer is unreachable for now (EHOSTDOWN, which the peer provider retries on another replica). */
const PEER_FAILURE: ConnFailure = (_kind, message, cause) => new FsError('EHOSTDOWN', message.replace('the server', 'the peer'), cause);
/** What a buffered answer may weigh by default: JSON answers are small (change pages stop at 8 MiB). */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** Parses `https://HOST:PORT` (no path). Throws EINVAL. */
export function parsePeerUrl(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FsError('EINVAL', `${JSON.stringify(url)} is not a peer address (https://HOST:PORT)`);
  }
  if (u.protocol !== 'https:' || !u.port || (u.pathname !== '/' && u.pathname !== ''))
    throw new FsError('EINVAL', `${JSON.stringify(url)} is not a peer address (https://HOST:PORT)`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}

/**
 * HTTPS to one peer, with mutual TLS: we present our certificate, and the peer's must have the
 * pinned fingerprint — checked in the handshake callback, before the socket is handed to HTTP,
 * so not one request byte reaches an impostor. Connections are kept alive and reused.
 * Every method throws FsError: EHOSTDOWN (unreachable, reset, silent), EACCES (wrong
 * fingerprint, or the peer refused us), or the code the peer answered with.
 */
export class PeerClient {
  private readonly agent: http.Agent;
  private readonly target: { host: string; port: number };
  private readonly alpn: string;
  private readonly connectMs: number;
  private readonly fp: string;
  private secureContext?: tls.SecureContext;
  /** Blob connections (Http1Conn) free for the next request, the most recent last. */
  private readonly idleBlobConns = new IdleConns(16);
  private readonly blobConns = new Set<Http1Conn>();
  private closed = false;
  private dialing = 0;
  private readonly dialWaiters: (() => void)[] = [];

  constructor(
    readonly url: string,
    readonly fingerprint: string,
    private readonly keys: NodeKeys,
    opts: { alpn?: string; connectMs?: number } = {},
  ) {
    this.target = parsePeerUrl(url);
    this.alpn = opts.alpn ?? ALPN_PEER;
    this.connectMs = opts.connectMs ?? 5000;
    this.fp = fingerprint.toLowerCase();
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 16, scheduling: 'lifo' });
    // The callback form of createConnection lets us finish (and check) the handshake first.
    (this.agent as unknown as { createConnection: unknown }).createConnection = (_o: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
      this.connect().then(
        (sock) => cb(null, sock),
        (err: Error) => cb(err),
      );
      return undefined;
    };
  }

  /**
   * A TLS connection whose peer presented the pinned certificate — checked once the handshake
   * is done, before anything is written, so not one request byte reaches an impostor. `onread`
   * as tls.connect takes it. Throws EACCES (our keys unusable, wrong certificate), EHOSTDOWN
   * (no handshake within connectMs) or the socket's error.
   */
  private connect(onread?: OnRead): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      try {
        // One TLS context for every connection of this client: building it (parsing our key and
        // certificate) cost ~20 ms of CPU per new connection.
        this.secureContext ??= tls.createSecureContext({ key: this.keys.key, cert: this.keys.cert });
      } catch (err) {
        reject(new FsError('EACCES', `this node's TLS key or certificate is unusable: ${(err as Error).message}`, err));
        return;
      }
      const sock = tls.connect({
        host: this.target.host,
        port: this.target.port,
        secureContext: this.secureContext,
        ALPNProtocols: [this.alpn],
        rejectUnauthorized: false,
        servername: undefined,
        ...(onread ? { onread } : {}),
      });
      const timer = setTimeout(() => sock.destroy(new FsError('EHOSTDOWN', `${this.url}: no TLS handshake within ${this.connectMs} ms`)), this.connectMs);
      sock.once('secureConnect', () => {
        clearTimeout(timer);
        const cert = sock.getPeerCertificate(false);
        const got = cert?.raw ? fingerprintOfDer(cert.raw) : '';
        if (got !== this.fp) {
          sock.destroy();
          reject(new FsError('EACCES', `${this.url} presented certificate ${got.slice(0, 16) || '(none)'}…, not the paired ${this.fp.slice(0, 16)}…`));
          return;
        }
        resolve(sock);
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /**
   * A new blob connection: its socket reads where the connection's current route says (Http1Conn).
   * At most MAX_DIALS handshakes at once: the peer admits 8 unauthenticated connections per
   * source (mount/peer-server/peer-admission.ts), and many files opened at once must not be refused.
   */
  private async dialBlob(): Promise<Http1Conn> {
    while (this.dialing >= MAX_DIALS) await new Promise<void>((r) => this.dialWaiters.push(r));
    this.dialing++;
    try {
      return await this.dialBlobNow();
    } finally {
      this.dialing--;
      this.dialWaiters.shift()?.();
    }
  }

  private async dialBlobNow(): Promise<Http1Conn> {
    const at: { conn?: Http1Conn } = {};
    // Nothing is asked before the connection exists: a byte then is not HTTP.
    let early = false;
    const sock = await this.connect(routedReads(at, () => (early = true)));
    if (early) {
      sock.destroy();
      throw new FsError('EHOSTDOWN', `${this.url}: the peer sent bytes before any request`);
    }
    const c = (at.conn = new Http1Conn(sock, PEER_FAILURE));
    this.blobConns.add(c);
    sock.on('error', () => undefined); // a request in flight hears it through 'close'; an idle one is dropped
    sock.once('close', () => {
      this.blobConns.delete(c);
      this.idleBlobConns.drop(c);
    });
    return c;
  }

  /**
   * `GET path` (with `o.headers`) on a blob connection, the answer handed over once its head has
   * arrived: its body is a LendingReadable, written straight into the consumer's buffers when it
   * lends them (Http1Conn: no HTTP parser, chunk or copy per TLS record). The body fails with
   * EHOSTDOWN when the peer goes silent for `o.idleMs` or closes mid-answer. Throws FsError as
   * the class says; a kept-alive connection the peer had closed is replaced once.
   */
  async openBlob(path: string, o: PeerRequestOptions = {}): Promise<Http1Answer> {
    const what = `${this.url}${path}`;
    const host = this.target.host.includes(':') ? `[${this.target.host}]` : this.target.host;
    const head = requestHead(o.method ?? 'GET', path, { host: `${host}:${this.target.port}`, ...o.headers });
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new FsError('EHOSTDOWN', `${what}: the client is closed`);
      if (o.signal?.aborted) throw new FsError('EIO', `${what}: aborted`);
      let conn: Http1Conn;
      try {
        conn = this.idleBlobConns.take() ?? (await this.dialBlob());
      } catch (err) {
        throw mapError(err, what);
      }
      const onAbort = () => conn.sock.destroy();
      o.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await conn.request(head, o.idleMs ?? 15_000, (reusable) => {
          o.signal?.removeEventListener('abort', onAbort);
          conn.reused = true;
          this.idleBlobConns.give(conn, reusable && !this.closed);
        });
      } catch (err) {
        if (o.signal?.aborted) throw new FsError('EIO', `${what}: aborted`, err);
        // A kept-alive connection the peer closed meanwhile (its idle limit): once more on a new one.
        if (conn.reused && attempt === 0 && err instanceof FsError && err.code === 'EHOSTDOWN') continue;
        throw mapError(err, what);
      }
    }
  }

  /** One request; the whole body is buffered, up to `o.maxBytes` (then EFBIG: a peer cannot make us hold gigabytes). */
  request(path: string, o: PeerRequestOptions = {}): Promise<PeerResponse> {
    const max = o.maxBytes ?? MAX_ANSWER_BYTES;
    return new Promise((resolve, reject) => {
      const fail = (err: unknown) => reject(mapError(err, `${this.url}${path}`));
      const req = http.request(
        { agent: this.agent, host: this.target.host, port: this.target.port, path, method: o.method ?? 'GET', headers: o.headers, signal: o.signal },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          const tooBig = () => {
            fail(new FsError('EFBIG', `${this.url}${path}: the peer's answer is larger than ${max} bytes; refused`));
            req.destroy();
          };
          if (Number(res.headers['content-length'] ?? 0) > max) return tooBig();
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > max) return tooBig();
            chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', fail);
          res.on('aborted', () => fail(new FsError('EHOSTDOWN', `${this.url}${path}: the peer closed the connection mid-response`)));
        },
      );
      req.setTimeout(o.idleMs ?? 15_000, () => req.destroy(new FsError('EHOSTDOWN', `${this.url}${path}: no answer within ${o.idleMs ?? 15_000} ms`)));
      req.on('error', fail);
      req.end(o.body);
    });
  }

  /**
   * One request whose body is consumed by `onData` as it arrives (nothing buffered): for whole
   * blobs, snapshots and measurements. Resolves with the status when the body has ended.
   * `onData` must not throw: abort through `o.signal` instead.
   */
  stream(path: string, onData: (chunk: Buffer, status: number) => void, o: PeerRequestOptions = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const fail = (err: unknown) => reject(mapError(err, `${this.url}${path}`));
      const req = http.request(
        { agent: this.agent, host: this.target.host, port: this.target.port, path, method: o.method ?? 'GET', headers: o.headers, signal: o.signal },
        (res) => {
          res.on('data', (c: Buffer) => onData(c, res.statusCode ?? 0));
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', fail);
          res.on('aborted', () => fail(new FsError('EHOSTDOWN', `${this.url}${path}: the peer closed the connection mid-response`)));
        },
      );
      req.setTimeout(o.idleMs ?? 15_000, () => req.destroy(new FsError('EHOSTDOWN', `${this.url}${path}: no answer within ${o.idleMs ?? 15_000} ms`)));
      req.on('error', fail);
      req.end(o.body);
    });
  }

  /**
   * One request whose answer is handed over once its headers arrive, the body unread (for
   * streamed read-ahead windows). The body stream fails with EHOSTDOWN when the peer goes
   * silent for `idleMs` or closes mid-answer.
   */
  open(path: string, o: PeerRequestOptions = {}): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const what = `${this.url}${path}`;
      const req = http.request(
        { agent: this.agent, host: this.target.host, port: this.target.port, path, method: o.method ?? 'GET', headers: o.headers, signal: o.signal },
        (res) => {
          res.on('aborted', () => res.destroy(new FsError('EHOSTDOWN', `${what}: the peer closed the connection mid-response`)));
          resolve(res);
        },
      );
      req.setTimeout(o.idleMs ?? 15_000, () => req.destroy(new FsError('EHOSTDOWN', `${what}: no answer within ${o.idleMs ?? 15_000} ms`)));
      req.on('error', (err) => reject(mapError(err, what)));
      req.end(o.body);
    });
  }

  /** GET/POST expecting JSON; a non-2xx answer throws the FsError the peer described. */
  async json<T>(path: string, o: PeerRequestOptions = {}): Promise<T> {
    const res = await this.request(path, { ...o, headers: { accept: 'application/json', ...(o.headers ?? {}) } });
    if (res.status < 200 || res.status > 299) throw errorOf(res, `${this.url}${path}`);
    try {
      return JSON.parse(res.body.toString('utf8')) as T;
    } catch {
      throw new FsError('EIO', `${this.url}${path}: the peer did not answer JSON`);
    }
  }

  close(): void {
    this.closed = true;
    this.agent.destroy();
    for (const c of this.blobConns) c.sock.destroy();
    this.idleBlobConns.clear();
  }
}

/** The FsError a peer's error answer carries (`{"code": "ENOENT", "message": ...}`), else EIO. */
export function errorOf(res: PeerResponse, what: string): FsError {
  let code: FsErrorCode = codeOfPeerStatus(res.status);
  let message = `HTTP ${res.status}`;
  try {
    const b = JSON.parse(res.body.toString('utf8')) as { code?: string; message?: string };
    if (b.code && CODES.has(b.code)) code = b.code as FsErrorCode;
    if (b.message) message = b.message;
  } catch {
    // not JSON: keep the status
  }
  return new FsError(code, `${what}: ${message}`);
}

function mapError(err: unknown, what: string): FsError {
  if (err instanceof FsError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if ((err as Error).name === 'AbortError') return new FsError('EIO', `${what}: aborted`, err);
  // Refused, reset, unreachable, a TLS alert from a peer that does not know us: the peer is not usable now.
  const refusedTls = typeof code === 'string' && code.startsWith('ERR_SSL');
  return new FsError(refusedTls ? 'EACCES' : 'EHOSTDOWN', `${what}: ${(err as Error).message}${code ? ` (${code})` : ''}`, err);
}
