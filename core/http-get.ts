import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { FsError } from './fs-error';
import { Http1Conn, IdleConns, requestHead, routedReads, type ConnFailure, type Http1Answer } from './http1-conn';

/** Per-request timeouts of a direct GET. */
export interface GetTimeouts {
  /** TCP/TLS connect. */
  connectMs: number;
  /** A socket idle this long (no header, no body byte) is abandoned: the request fails with a TimeoutError. */
  idleMs: number;
}

/** One remote location's connection pool for a client library (the S3 SDK): kept-alive node:http(s) agents. */
export interface KeptAliveAgents {
  http: HttpAgent;
  https: HttpsAgent;
}

/** Kept-alive agents, at most `maxSockets` connections each. */
export function keptAliveAgents(maxSockets = 64): KeptAliveAgents {
  const opts = { keepAlive: true, maxSockets };
  return { http: new HttpAgent(opts), https: new HttpsAgent(opts) };
}

/** Where a GET goes. */
export interface GetTarget {
  protocol: 'http:' | 'https:';
  hostname: string;
  port?: number | string;
  /** Path and query, already encoded. */
  path: string;
}

/** A GET's answer: its status and headers (names lowercased), and the body as it arrives, which can write straight into lent buffers (LendingReadable). */
export type GetAnswer = Http1Answer;

/** Idle connections kept per host. */
const MAX_IDLE = 16;

function abortError(cause?: unknown): Error {
  return Object.assign(new Error('The operation was aborted', { cause }), { name: 'AbortError', code: 'ABORT_ERR' });
}

/**
 * Failures told the way node:http tells them, so the S3 and Drive retry classifiers read both
 * alike: a close or reset has code ECONNRESET (or the socket's own code), silence is a
 * TimeoutError (code ETIMEDOUT).
 */
function failureFor(host: string): ConnFailure {
  return (kind, message, cause) =>
    kind === 'silent'
      ? Object.assign(new Error(`${host}: ${message}`), { name: 'TimeoutError', code: 'ETIMEDOUT' })
      : Object.assign(new Error(`${host}: ${message}`, { cause }), { code: (cause as { code?: string } | undefined)?.code ?? 'ECONNRESET' });
}

/**
 * Kept-alive HTTP/1.1 connections for content GETs (S3 objects, Drive media), speaking HTTP
 * itself on sockets read with node's `onread` (core/http1-conn.ts): a body streamed into the
 * block buffers its consumer lends costs no HTTP parser call, no fresh 64 KiB read buffer and no
 * copy per read, where node:http took both for every read (fresh memory is what costs on these
 * VMs: docs/read-pipeline.md). HTTPS verifies the server against node's default CAs (and
 * NODE_EXTRA_CA_CERTS) with SNI. Connections are not capped here: the callers bound how many
 * GETs run at once (read-ahead windows, the folder walk's pool).
 */
export class HttpPool {
  private readonly idle = new Map<string, IdleConns>();
  private readonly live = new Set<Http1Conn>();
  private closed = false;

  /**
   * Sends `GET t.path` with `headers` (a `host` header is added when absent) and resolves with
   * the answer as soon as its head arrives, the body left to stream. Rejects with the socket's
   * error (code ECONNREFUSED, ENOTFOUND, ECONNRESET...), an error named TimeoutError (connect or
   * idle timeout; the idle timeout goes on for the body, so a stalled body is cut too), an
   * AbortError when `signal` aborts, FsError EINVAL (a line break in the request) or EIO (an
   * answer that is not HTTP/1.x). A kept-alive connection the server closed meanwhile is
   * replaced once. `collect`: a 2xx body of at most this many bytes (content-length) is read
   * into one buffer from its first byte (`GetAnswer.collected`; core/lent-stream bufferedBody).
   */
  async get(t: GetTarget, headers: Record<string, string>, timeouts: GetTimeouts, signal?: AbortSignal, collect = 0): Promise<GetAnswer> {
    const port = Number(t.port || (t.protocol === 'https:' ? 443 : 80));
    const key = `${t.protocol}//${t.hostname}:${port}`;
    const hostName = net.isIPv6(t.hostname) ? `[${t.hostname}]` : t.hostname;
    const defaultPort = port === (t.protocol === 'https:' ? 443 : 80);
    const head = requestHead('GET', t.path, { host: defaultPort ? hostName : `${hostName}:${port}`, ...headers });
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new FsError('EIO', `${key}: the connection pool is closed`);
      if (signal?.aborted) throw abortError(signal.reason);
      const conn = this.idleFor(key).take() ?? (await this.dial(t, port, timeouts.connectMs, signal));
      const onAbort = () => conn.sock.destroy();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await conn.request(
          head,
          timeouts.idleMs,
          (reusable) => {
            signal?.removeEventListener('abort', onAbort);
            conn.reused = true;
            this.idleFor(key).give(conn, reusable && !this.closed);
          },
          collect,
        );
      } catch (err) {
        if (signal?.aborted) throw abortError(err);
        // A kept-alive connection the server closed while it was idle: once more on a new one (a GET may be sent again). Not after silence: that took idleMs already.
        if (conn.reused && attempt === 0 && !(err instanceof FsError) && (err as Error).name !== 'TimeoutError') continue;
        throw err;
      }
    }
  }

  private idleFor(key: string): IdleConns {
    let idle = this.idle.get(key);
    if (!idle) this.idle.set(key, (idle = new IdleConns(MAX_IDLE)));
    return idle;
  }

  private dial(t: GetTarget, port: number, connectMs: number, signal?: AbortSignal): Promise<Http1Conn> {
    return new Promise((resolve, reject) => {
      const at: { conn?: Http1Conn } = {};
      // The connection is made in this same turn, before any read can complete.
      const onread = routedReads(at, () => undefined);
      const host = t.hostname;
      // tls.connect passes `onread` on to its socket; its typings leave it out.
      const sock =
        t.protocol === 'https:'
          ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], onread } as tls.ConnectionOptions)
          : net.connect({ host, port, onread });
      const conn = (at.conn = new Http1Conn(sock, failureFor(host)));
      this.live.add(conn);
      const onAbort = () => sock.destroy(abortError(signal?.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(
        () => sock.destroy(Object.assign(new Error(`could not connect to ${host} in ${connectMs} ms`), { name: 'TimeoutError', code: 'ETIMEDOUT' })),
        connectMs,
      );
      const settle = (err?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        sock.off('error', settle);
        if (err) reject(err);
        else resolve(conn);
      };
      sock.once(t.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
        sock.setNoDelay(true);
        settle();
      });
      sock.once('error', settle);
      sock.on('error', () => undefined); // a request in flight hears of it through its own listeners; an idle connection is dropped
      sock.once('close', () => {
        this.live.delete(conn);
        this.idle.get(`${t.protocol}//${host}:${port}`)?.drop(conn);
      });
    });
  }

  /** Closes every connection, idle or busy. */
  close(): void {
    this.closed = true;
    for (const c of this.live) c.sock.destroy();
    this.live.clear();
    this.idle.clear();
  }
}
