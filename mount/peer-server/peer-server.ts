import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { NodeKeys } from '../../core/node-identity';
import { FsError, toFsError } from '../../core/fs-error';
import { ALPN_PAIR, ALPN_PEER } from '../../core/peer-protocol';
import type { AdmissionLimits } from './peer-admission';
import { PairRateLimit } from './pair-rate-limit';
import type { PairingService, PeerDirectory, ServeSource } from './peer-sources';
import { ChangeFeed } from './change-feed';
import { PeerGate } from './peer-gate';
import { MAX_WAIT_S, peerRequestHandler } from './peer-routes';

export interface PeerServerOptions {
  host: string;
  port: number;
  keys: NodeKeys;
  name: string;
  log: Logger;
  /** The paired nodes. */
  peers: PeerDirectory;
  /** Accepts pairing requests (on `vdfs-pair/1` connections). */
  pairing: PairingService;
  /** The shared locations' trees, changes and blobs (it hides vdfs's own state folders). */
  source: ServeSource;
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

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** All connections, paired ones included: far below the usual 1024 descriptors a process gets. */
const MAX_CONNECTIONS = 512;

/** The HTTPS server with the peer port's TLS settings and time limits. */
function createTlsServer(o: PeerServerOptions, stallMs: number): https.Server {
  const server = https.createServer({
    key: o.keys.key,
    cert: o.keys.cert,
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: [ALPN_PEER, ALPN_PAIR],
    maxHeaderSize: 8192,
    minVersion: 'TLSv1.3',
    handshakeTimeout: stallMs,
    // How often Node checks the header/request timers (default 30 s would double the limit).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(stallMs / 4))),
  });
  // Nobody gets to hold a socket without finishing what it started: the TLS handshake, then
  // each request (headers and body; a long-poll or a blob stream is the *response*, not covered).
  server.headersTimeout = stallMs;
  server.requestTimeout = stallMs;
  server.keepAliveTimeout = stallMs;
  // No byte either way for this long, even mid-response: a long-poll answers within MAX_WAIT_S.
  server.timeout = MAX_WAIT_S * 1000 + stallMs;
  server.maxConnections = MAX_CONNECTIONS;
  return server;
}

/**
 * HTTPS with mutual TLS for paired nodes, in three parts: admission and authentication of
 * connections (PeerGate: only paired certificates, or `vdfs-pair/1` for pairing), routing of
 * requests (peer-routes) and blob serving (peer-blobs); errors answer through one status
 * table (core/peer-protocol PEER_STATUS). What it serves and who is paired come from `o.source`,
 * `o.peers` and `o.pairing` (the wiring builds them over the index). Revoked peers (`vdfs peer rm`, from any process) lose
 * their open connections within a second. Throws FsError EBUSY (address in use), EACCES or
 * what toFsError makes of another listen error.
 */
export async function startPeerServer(o: PeerServerOptions): Promise<PeerServer> {
  const stallMs = o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const index = o.source;
  const gate = new PeerGate(o.peers, o.log, stallMs, o.admission);
  const feed = new ChangeFeed(() => index.headSeq(), o.log);
  const server = createTlsServer(o, stallMs);
  gate.attach(server);
  const self = { id: o.keys.id, name: o.name, protocol: 1 as const };
  const pair = { pairing: o.pairing, log: o.log, limiter: new PairRateLimit(), paired: () => void gate.refresh() };
  server.on('request', peerRequestHandler({ self, log: o.log, index, peers: o.peers, gate, feed, pair }));

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      gate.close();
      feed.close();
      reject(err.code === 'EADDRINUSE' ? new FsError('EBUSY', `${o.host}:${o.port} is already in use`) : toFsError(err, 'peer server'));
    });
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `https://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        gate.close();
        feed.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
