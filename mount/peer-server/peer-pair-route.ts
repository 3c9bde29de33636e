import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { fingerprintOfDer } from '../../core/node-identity';
import { FsError } from '../../core/fs-error';
import type { PairRateLimit } from './pair-rate-limit';
import type { PairingService } from './peer-sources';
import { sourceKey } from './peer-admission';
import { sendJson } from './peer-replies';

const MAX_PAIR_BODY = 16 * 1024;

export interface PairRoute {
  pairing: PairingService;
  log: Logger;
  limiter: PairRateLimit;
  /** Called once a node is paired, so its next connection is let in. */
  paired(): void;
}

/** The body of a pairing request, at most MAX_PAIR_BODY bytes. Throws EFBIG. */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_PAIR_BODY) throw new FsError('EFBIG', 'pairing request too large');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_PAIR_BODY) throw new FsError('EFBIG', 'pairing request too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/**
 * `POST /v1/pair` on an unpaired certificate's connection: one attempt per connection, rate
 * limited per source, failures counted against it. Throws FsError EBUSY (too many attempts),
 * EFBIG, EINVAL (not JSON), or what PairingService.accept throws (EACCES for a bad token).
 */
export async function handlePair(r: PairRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const addr = sourceKey(req.socket.remoteAddress);
  res.shouldKeepAlive = false; // one pairing attempt per connection
  if (!r.limiter.allowed(addr)) throw new FsError('EBUSY', 'too many pairing attempts; wait a minute');
  const raw = await readBody(req);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    r.limiter.failed(addr);
    throw new FsError('EINVAL', 'pairing request is not JSON');
  }
  const cert = (req.socket as TLSSocket).getPeerCertificate(false);
  try {
    const fp = fingerprintOfDer(cert.raw);
    const ans = r.pairing.accept(fp, body, addr);
    r.paired();
    r.log.info({ peer: fp.slice(0, 16), remote: addr }, 'peer: paired');
    sendJson(res, ans);
    // This connection was for pairing only: the new peer reconnects as a paired node.
    res.once('finish', () => req.socket.end());
  } catch (err) {
    r.limiter.failed(addr);
    throw err;
  }
}
