import { isIPv6 } from 'node:net';
import type { Socket } from 'node:net';

/** How many connections the peer port admits before a certificate has proved to be a paired node's. */
export interface AdmissionLimits {
  /** Unauthenticated connections (TCP, TLS handshake, pairing) from one source. */
  perSource: number;
  /** Unauthenticated connections in all. When full, the oldest one is dropped for a new one. */
  total: number;
}

export const DEFAULT_ADMISSION: AdmissionLimits = { perSource: 8, total: 128 };

/**
 * The source a connection is counted under: the IPv4 address, or the /64 of an IPv6 address
 * (one host on a LAN usually owns a whole /64, so counting single IPv6 addresses would let it
 * open millions). IPv4-mapped IPv6 addresses count as their IPv4 address.
 */
export function sourceKey(addr: string | undefined): string {
  if (!addr) return '?';
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (v4) return v4[1];
  if (!isIPv6(addr)) return addr;
  const [head, tail = ''] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = addr.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

function connKey(sock: Socket): string {
  return `${sock.remoteAddress}|${sock.remotePort}`;
}

/**
 * Admission control for the peer port, before authentication: a per-source cap (further
 * connections from that source are refused at once) and a global cap where the oldest
 * unauthenticated connection makes room for a new one, so a flood from many addresses can
 * hold sockets only briefly and a paired node (whose handshake takes milliseconds) still gets
 * in. A connection leaves the count when it closes or proves to be a paired node. Never throws.
 */
export class Admission {
  /**
   * By `address:port` (the same on the TCP socket and on the TLS socket wrapping it), insertion
   * order = age: the first one is the oldest.
   */
  private readonly pending = new Map<string, { sock: Socket; source: string }>();
  private readonly bySource = new Map<string, number>();

  constructor(private readonly limits: AdmissionLimits = DEFAULT_ADMISSION) {}

  /** A new TCP connection: false (and the socket destroyed) when its source is over its cap. */
  admit(sock: Socket): boolean {
    const key = sourceKey(sock.remoteAddress);
    const n = this.bySource.get(key) ?? 0;
    if (n >= this.limits.perSource) {
      sock.destroy();
      return false;
    }
    while (this.pending.size >= this.limits.total) {
      const oldest = this.pending.values().next().value!.sock;
      this.release(oldest);
      oldest.destroy();
    }
    this.pending.set(connKey(sock), { sock, source: key });
    this.bySource.set(key, n + 1);
    sock.once('close', () => this.release(sock));
    return true;
  }

  /** The connection (its TCP or its TLS socket) proved to be a paired node's: it no longer counts. */
  release(sock: Socket): void {
    const k = connKey(sock);
    const p = this.pending.get(k);
    if (p === undefined) return;
    this.pending.delete(k);
    const n = (this.bySource.get(p.source) ?? 1) - 1;
    if (n <= 0) this.bySource.delete(p.source);
    else this.bySource.set(p.source, n);
  }

  /** Unauthenticated connections held now. */
  get size(): number {
    return this.pending.size;
  }
}
