import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the proxy does to one request. */
export type Fault =
  | { kind: 'delay'; ms: number }
  /** Drop the connection before any answer. */
  | { kind: 'reset' }
  /** Answer with this status and an S3 error body (503 SlowDown, 429, 500...). */
  | { kind: 'status'; status: number; code?: string }
  /** Forward the headers (with the real Content-Length), then only `bytes` of the body, then drop. */
  | { kind: 'truncate'; bytes: number }
  /** Forward the answer with one body byte inverted (at `at`, default the middle). */
  | { kind: 'flip'; at?: number };

interface Rule {
  fault: Fault;
  left: number;
  match?: (req: IncomingMessage) => boolean;
}

export interface FaultProxy {
  endpoint: string;
  /** Applies `fault` to the next `times` matching requests (default 1; Infinity for all). */
  inject(fault: Fault, opts?: { times?: number; match?: (req: IncomingMessage) => boolean }): void;
  clear(): void;
  /** Requests seen, and how many got a fault. */
  readonly stats: { requests: number; faulted: number };
  close(): Promise<void>;
}

/**
 * A plain node:http proxy between the S3 client and the test server, injecting faults on
 * command. Headers are forwarded unchanged (Host included: the request signature covers it).
 */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const rules: Rule[] = [];
  const stats = { requests: 0, faulted: 0 };
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, res: ServerResponse, fault?: Fault) => {
    const out = request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (ures) => {
      if (fault?.kind === 'flip') {
        const chunks: Buffer[] = [];
        ures.on('data', (c: Buffer) => chunks.push(c));
        ures.on('end', () => {
          const body = Buffer.concat(chunks);
          if (body.length > 0) {
            const i = Math.min(fault.at ?? body.length >> 1, body.length - 1);
            body[i] ^= 0xff;
          }
          res.writeHead(ures.statusCode ?? 502, ures.headers);
          res.end(body);
        });
        return;
      }
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      if (fault?.kind === 'truncate') {
        let sent = 0;
        ures.on('data', (c: Buffer) => {
          if (sent >= fault.bytes) return;
          const part = c.subarray(0, fault.bytes - sent);
          sent += part.length;
          res.write(part);
          if (sent >= fault.bytes) {
            ures.destroy();
            setImmediate(() => res.socket?.destroy());
          }
        });
        ures.on('end', () => res.socket?.destroy());
        return;
      }
      ures.pipe(res);
    });
    out.on('error', () => res.socket?.destroy());
    req.pipe(out);
  };

  const server: Server = createServer((req, res) => {
    stats.requests++;
    const i = rules.findIndex((r) => r.left > 0 && (!r.match || r.match(req)));
    const fault = i >= 0 ? rules[i].fault : undefined;
    if (i >= 0) {
      stats.faulted++;
      if (--rules[i].left === 0) rules.splice(i, 1);
    }
    if (!fault) return forward(req, res);
    switch (fault.kind) {
      case 'delay':
        setTimeout(() => forward(req, res), fault.ms);
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'status': {
        req.resume();
        const code = fault.code ?? (fault.status === 503 ? 'SlowDown' : 'InternalError');
        res.writeHead(fault.status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected ${fault.status}</Message></Error>`);
        return;
      }
      default:
        forward(req, res, fault);
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject(fault, opts = {}) {
      rules.push({ fault, left: opts.times ?? 1, match: opts.match });
    },
    clear() {
      rules.length = 0;
    },
    stats,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
