import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { toFsError } from '../../core/fs-error';
import { PEER_STATUS } from '../../core/peer-protocol';

/** A 200 JSON answer that no cache keeps. */
export function sendJson(res: ServerResponse, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * Answers a failed request with its status from PEER_STATUS and `{"code","message"}` (the
 * client turns it back into the same FsError), and logs it: 5xx as errors, the rest as
 * refusals. Once headers are out there is no way to say so but to cut the connection.
 */
export function sendError(log: Logger, req: IncomingMessage, res: ServerResponse, err: unknown, peer: string | undefined): void {
  const fe = toFsError(err, 'peer request');
  const status = PEER_STATUS[fe.code];
  const level = status >= 500 ? 'error' : 'warn';
  log[level](
    { peer: peer?.slice(0, 16), remote: req.socket.remoteAddress, method: req.method, url: req.url?.slice(0, 200), status, code: fe.code },
    `peer: refused: ${fe.message}`,
  );
  if (res.headersSent) return void res.destroy();
  const body = JSON.stringify({ code: fe.code, message: fe.message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}
