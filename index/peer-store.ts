import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from './db';
import { INVITE_PREFIX, SHARE_KEY } from './share-records';
import { sharesChanged } from './share-epoch';
import { FsError } from '../core/fs-error';

/** A paired node, as `nodes` records it. */
export interface PeerNode {
  /** SHA-256 of its certificate (hex): what its TLS handshake must present. */
  id: string;
  name: string;
  /** Where its peer server was last known to listen: `https://HOST:PORT`. */
  addresses: string[];
  pairedAt: number | null;
  lastSeen: number | null;
  /** Names of this node's locations it may read. */
  shares: string[];
}

/** An outstanding invitation: only the token's SHA-256 is stored. */
interface Invite {
  expires: number;
  shares: string[];
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Paired nodes, what is shared with each, and pairing invitations. Shares and invitations live
 * in `meta` (no schema change needed; the CLI and the daemon both see them at once).
 * Methods throw FsError ENOENT (unknown peer or location), EINVAL (ambiguous name), EACCES (bad token).
 */
export class PeerStore {
  constructor(private readonly db: Db) {}

  list(): PeerNode[] {
    const rows = this.db.prepare('SELECT id, name, addresses, paired_at, last_seen FROM nodes WHERE is_self = 0 ORDER BY name').all() as {
      id: string;
      name: string;
      addresses: string;
      paired_at: number | null;
      last_seen: number | null;
    }[];
    return rows.map((r) => ({ id: r.id, name: r.name, addresses: JSON.parse(r.addresses) as string[], pairedAt: r.paired_at, lastSeen: r.last_seen, shares: this.sharesOf(r.id) }));
  }

  /** The paired node with this exact id (fingerprint), or undefined. */
  byId(id: string): PeerNode | undefined {
    return this.list().find((p) => p.id === id);
  }

  /** The addresses of the paired node with this id (one row read, for every peer read), or undefined. */
  addressesOf(id: string): string[] | undefined {
    const r = this.db.prepare('SELECT addresses FROM nodes WHERE id = ? AND is_self = 0').get(id) as { addresses: string } | undefined;
    return r ? (JSON.parse(r.addresses) as string[]) : undefined;
  }

  /** A peer by name, full id, short id or id prefix (≥ 8 hex digits). Throws ENOENT, EINVAL when ambiguous. */
  find(ref: string): PeerNode {
    const peers = this.list();
    const hex = ref.replace(/-/g, '').toLowerCase();
    const hits = peers.filter((p) => p.name === ref || p.id === hex || (hex.length >= 8 && /^[0-9a-f]+$/.test(hex) && p.id.startsWith(hex)));
    if (hits.length === 0) throw new FsError('ENOENT', `no paired peer ${JSON.stringify(ref)} (see: vdfs peer ls)`);
    if (hits.length > 1) throw new FsError('EINVAL', `${JSON.stringify(ref)} names ${hits.length} peers; use the node id`);
    return hits[0];
  }

  /** Records (or refreshes) a paired node. Throws EINVAL when the id is this node's own. */
  upsert(p: { id: string; name: string; addresses: string[] }): void {
    const self = this.db.prepare('SELECT id FROM nodes WHERE is_self = 1').get() as { id: string } | undefined;
    if (self?.id === p.id) throw new FsError('EINVAL', 'a node cannot pair with itself');
    this.db
      .prepare(
        `INSERT INTO nodes (id, name, is_self, addresses, paired_at, last_seen) VALUES (?, ?, 0, ?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET name = excluded.name, addresses = excluded.addresses, paired_at = excluded.paired_at`,
      )
      .run(p.id, p.name, JSON.stringify(p.addresses), Date.now(), Date.now());
  }

  /** Forgets a peer and what was shared with it. Its peer locations must be removed first (they refer to it). */
  remove(id: string): void {
    this.db
      .transaction(() => {
        this.db.prepare('DELETE FROM meta WHERE key = ?').run(SHARE_KEY(id));
        sharesChanged(this.db);
        this.db.prepare('DELETE FROM nodes WHERE id = ? AND is_self = 0').run(id);
      })
      .immediate();
  }

  touch(id: string): void {
    this.db.prepare('UPDATE nodes SET last_seen = ? WHERE id = ? AND is_self = 0').run(Date.now(), id);
  }

  sharesOf(id: string): string[] {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(SHARE_KEY(id)) as { value: string } | undefined;
    return r ? (JSON.parse(r.value) as string[]) : [];
  }

  /** Replaces what is shared with a peer. Throws ENOENT for a location that is not one of ours. */
  setShares(id: string, names: string[]): void {
    for (const n of names) this.checkOwnLocation(n);
    this.db
      .prepare('INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value')
      .run(SHARE_KEY(id), JSON.stringify([...new Set(names)].sort()));
    sharesChanged(this.db);
  }

  /** Throws ENOENT unless `name` is a location this node owns (only those can be shared). */
  checkOwnLocation(name: string): void {
    const r = this.db.prepare(`SELECT l.kind FROM locations l JOIN nodes n ON n.id = l.owner_node AND n.is_self = 1 WHERE l.name = ?`).get(name) as { kind: string } | undefined;
    if (!r) throw new FsError('ENOENT', `no location named ${JSON.stringify(name)} owned by this node (see: vdfs location ls)`);
  }

  /** Creates an invitation: returns the token (128 random bits, hex); only its hash is kept. */
  createInvite(shares: string[], ttlMs: number): { token: string; expires: number } {
    for (const n of shares) this.checkOwnLocation(n);
    // Hex, not base64url: a token starting with '-' would be read as an option by
    // `vdfs peer pair URL CODE` (it happened in a test, 1 pairing in 64).
    const token = randomBytes(16).toString('hex');
    const expires = Date.now() + ttlMs;
    this.db
      .transaction(() => {
        // Expired invitations are dropped whenever a new one is made.
        for (const r of this.db.prepare('SELECT key, value FROM meta WHERE key LIKE ?').all(`${INVITE_PREFIX}%`) as { key: string; value: string }[]) {
          if ((JSON.parse(r.value) as Invite).expires < Date.now()) this.db.prepare('DELETE FROM meta WHERE key = ?').run(r.key);
        }
        this.db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)').run(INVITE_PREFIX + sha256Hex(token), JSON.stringify({ expires, shares } satisfies Invite));
      })
      .immediate();
    return { token, expires };
  }

  /**
   * Uses up an invitation: single use (deleted in the same transaction that checks it), refused
   * when expired. Throws EACCES for an unknown, used or expired token.
   */
  consumeInvite(token: string): { shares: string[] } {
    return this.db
      .transaction(() => {
        const key = INVITE_PREFIX + sha256Hex(token);
        const r = this.db.prepare('SELECT key, value FROM meta WHERE key = ?').get(key) as { key: string; value: string } | undefined;
        // The lookup is by hash, so timing tells nothing about the token; compare anyway for the record.
        if (!r || !timingSafeEqual(Buffer.from(r.key), Buffer.from(key))) throw new FsError('EACCES', 'unknown or already used pairing token');
        this.db.prepare('DELETE FROM meta WHERE key = ?').run(key);
        const inv = JSON.parse(r.value) as Invite;
        if (inv.expires < Date.now()) throw new FsError('EACCES', 'the pairing token has expired');
        return { shares: inv.shares };
      })
      .immediate();
  }
}
