import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { fingerprintOfDer } from '../../core/node-identity';
import { noteSwallowed } from '../../core/swallowed';
import { ALPN_PAIR } from '../../core/peer-protocol';
import type { PeerDirectory } from './peer-sources';
import { Admission, type AdmissionLimits } from './peer-admission';

/** Who is on a connection: a paired node (by fingerprint), or an unpaired certificate that may only pair. */
export type Who = { peer: string } | { pairing: true };

/** How often revocations made by another process (vdfs peer rm) are looked for. */
const SWEEP_MS = 500;

/**
 * Admission and authentication of peer connections, before HTTP sees a byte: the caps on
 * unauthenticated connections (Admission), the certificate check in `secureConnection`
 * (paired fingerprints pass; an unpaired certificate may stay only on ALPN `vdfs-pair/1`), a
 * timer that cuts a connection which never sends its first request, and a sweep that closes
 * the connections of revoked peers within a second. Never throws.
 */
export class PeerGate {
  private readonly who = new WeakMap<object, Who>();
  private readonly sockets = new Map<TLSSocket, string>();
  private readonly firstRequest = new WeakMap<object, NodeJS.Timeout>();
  private readonly admission: Admission;
  private paired = new Set<string>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly peers: PeerDirectory,
    private readonly log: Logger,
    private readonly stallMs: number,
    limits?: AdmissionLimits,
  ) {
    this.admission = new Admission(limits);
    this.refresh();
    this.sweep = setInterval(() => this.closeRevoked(), SWEEP_MS);
    this.sweep.unref();
  }

  /** Re-reads the paired nodes from the index (after a pairing, or a revocation elsewhere). */
  refresh(): Set<string> {
    this.paired = new Set(this.peers.pairedIds());
    return this.paired;
  }

  isPaired(fp: string): boolean {
    return this.paired.has(fp);
  }

  /** Who this request's connection belongs to (undefined: not admitted), and its first request has come. */
  requestArrived(sock: Socket): Who | undefined {
    clearTimeout(this.firstRequest.get(sock));
    return this.who.get(sock);
  }

  /** Hooks the gate into `server`. */
  attach(server: Server): void {
    server.prependListener('connection', (sock: Socket) => {
      if (!this.admission.admit(sock)) this.log.warn({ remote: sock.remoteAddress }, 'peer: refused a connection: too many unauthenticated connections from this source');
    });
    server.prependListener('secureConnection', (sock: TLSSocket) => this.authenticate(sock));
    // Node's header timer starts at the first byte: a client that finishes the handshake and
    // then says nothing is cut off here.
    server.on('secureConnection', (sock: TLSSocket) => {
      if (sock.destroyed) return;
      const timer = setTimeout(() => sock.destroy(), this.stallMs);
      timer.unref();
      this.firstRequest.set(sock, timer);
      sock.once('close', () => clearTimeout(timer));
    });
    server.on('tlsClientError', (err, sock) => {
      this.log.info({ remote: sock.remoteAddress, err: err.message }, 'peer: TLS handshake failed');
    });
  }

  private authenticate(sock: TLSSocket): void {
    const cert = sock.getPeerCertificate(false);
    const fp = cert?.raw ? fingerprintOfDer(cert.raw) : '';
    if (fp && (this.paired.has(fp) || this.refreshOrKeep().has(fp))) {
      this.admission.release(sock);
      this.who.set(sock, { peer: fp });
      this.sockets.set(sock, fp);
      sock.once('close', () => this.sockets.delete(sock));
    } else if (fp && sock.alpnProtocol === ALPN_PAIR) {
      this.who.set(sock, { pairing: true });
    } else {
      this.log.warn({ remote: sock.remoteAddress, cert: fp ? fp.slice(0, 16) : null }, 'peer: refused a connection: certificate not paired');
      sock.destroy();
    }
  }

  /** refresh(), or the set as it was when the index cannot be read now (logged and counted). */
  private refreshOrKeep(): Set<string> {
    try {
      return this.refresh();
    } catch (err) {
      noteSwallowed(this.log, 'peer server: reading the paired nodes', err);
      return this.paired;
    }
  }

  /** Revocation from another process (vdfs peer rm) shows in the index: close its connections. */
  private closeRevoked(): void {
    try {
      this.refresh();
    } catch (err) {
      // A busy index: the next sweep, half a second later, tries again.
      noteSwallowed(this.log, 'peer server: revocation sweep', err, {}, 'debug');
      return;
    }
    for (const [sock, fp] of this.sockets) {
      if (!this.paired.has(fp)) {
        this.log.warn({ peer: fp.slice(0, 16) }, 'peer: revoked: closing its connection');
        sock.destroy();
        this.sockets.delete(sock);
      }
    }
  }

  close(): void {
    clearInterval(this.sweep);
  }
}
