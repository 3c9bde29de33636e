import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** Per-request timeouts of a direct GET. */
export interface GetTimeouts {
  /** TCP/TLS connect. */
  connectMs: number;
  /** A socket idle this long (no header, no body byte) is abandoned: the request fails with a TimeoutError. */
  idleMs: number;
}

/** One remote location's connection pool: kept-alive sockets reused by every GET (and by an SDK that is given them). */
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

/**
 * Sends one GET with plain node:http(s) on the kept-alive `agents` and resolves with the
 * response as soon as its head arrives, the body left to stream as it comes (no copy, no
 * buffering: what the remote providers' content downloads need, where a client library adds a
 * stream and a copy per chunk). Rejects with the socket's error (code ECONNRESET,
 * ECONNREFUSED...), an error named TimeoutError (connect or idle timeout; the idle timeout goes
 * on for the body, so a stalled body is cut too), or an AbortError when `signal` aborts.
 */
export function sendGet(t: GetTarget, headers: Record<string, string>, agents: KeptAliveAgents, timeouts: GetTimeouts, signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const opts = { hostname: t.hostname, port: t.port, path: t.path, method: 'GET', headers, signal };
    const req: ClientRequest = t.protocol === 'https:' ? httpsRequest({ ...opts, agent: agents.https }) : httpRequest({ ...opts, agent: agents.http });
    const fail = (name: string, message: string) => req.destroy(Object.assign(new Error(message), { name }));
    req.setTimeout(timeouts.idleMs, () => fail('TimeoutError', `no answer from ${t.hostname} in ${timeouts.idleMs} ms`));
    req.once('socket', (s) => {
      if (!s.connecting) return;
      const timer = setTimeout(() => fail('TimeoutError', `could not connect to ${t.hostname} in ${timeouts.connectMs} ms`), timeouts.connectMs);
      s.once('connect', () => clearTimeout(timer));
      s.once('close', () => clearTimeout(timer));
    });
    req.once('response', resolve);
    req.once('error', reject);
    req.end();
  });
}
