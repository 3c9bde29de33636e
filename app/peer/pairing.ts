import { hostname } from 'node:os';
import type { Db } from '../../index/db';
import type { NodeKeys } from '../../core/node-identity';
import { FsError } from '../../core/fs-error';
import { PeerClient, parsePeerUrl } from '../../providers/peer/peer-client';
import { PeerStore } from '../../index/peer-store';
import { ALPN_PAIR, type PairAnswer, type PairRequest } from '../../core/peer-protocol';

/** `TOKEN#FINGERPRINT`: what `vdfs peer invite` prints after the URL. */
export function inviteCode(token: string, fingerprint: string): string {
  return `${token}#${fingerprint}`;
}

/** Splits `TOKEN#FINGERPRINT`. Throws EINVAL. */
export function parseInviteCode(code: string): { token: string; fingerprint: string } {
  const m = /^([A-Za-z0-9_-]{22,64})#([0-9a-fA-F]{64})$/.exec(code.trim());
  if (!m) throw new FsError('EINVAL', 'the invitation should look like TOKEN#FINGERPRINT (copy the whole line `vdfs peer invite` printed)');
  return { token: m[1], fingerprint: m[2].toLowerCase() };
}

/**
 * The inviter's side of `POST /v1/pair`: uses up the token, records the joining node by the
 * fingerprint of the certificate it presented in this very handshake, and applies both sides'
 * shares. Throws EACCES (bad token), EINVAL (malformed request).
 */
export function acceptPairing(db: Db, self: { id: string; name: string }, clientFp: string, body: unknown, _observedAddr: string): PairAnswer {
  const b = body as Partial<PairRequest>;
  if (typeof b?.token !== 'string' || typeof b.name !== 'string' || !Array.isArray(b.addresses) || !Array.isArray(b.shares))
    throw new FsError('EINVAL', 'malformed pairing request');
  const name = b.name.slice(0, 64);
  const addresses = b.addresses
    .filter((a): a is string => typeof a === 'string')
    .slice(0, 8)
    .filter((a) => {
      try {
        parsePeerUrl(a);
        return true;
      } catch {
        return false;
      }
    });
  const store = new PeerStore(db);
  return db
    .transaction(() => {
      const { shares } = store.consumeInvite(b.token!);
      store.upsert({ id: clientFp, name: uniqueName(store, name, clientFp), addresses });
      store.setShares(clientFp, [...new Set([...store.sharesOf(clientFp), ...shares])]);
      return { id: self.id, name: self.name, shares };
    })
    .immediate();
}

/**
 * The joining side: connects to the inviter with our certificate over ALPN `vdfs-pair/1`,
 * pins its fingerprint (from the invitation), sends the token, and records the inviter.
 * Throws EACCES (wrong fingerprint, token refused), EHOSTDOWN (unreachable), EINVAL.
 */
export async function pairWith(db: Db, keys: NodeKeys, selfName: string, url: string, code: string, opts: { shares: string[]; addresses: string[] }): Promise<PairAnswer> {
  const { token, fingerprint } = parseInviteCode(code);
  parsePeerUrl(url);
  if (fingerprint === keys.id) throw new FsError('EINVAL', 'this invitation was made by this node: run `vdfs peer pair` on the other one');
  const store = new PeerStore(db);
  for (const s of opts.shares) store.checkOwnLocation(s);
  const client = new PeerClient(url, fingerprint, keys, { alpn: ALPN_PAIR });
  try {
    const req: PairRequest = { token, name: selfName || hostname(), addresses: opts.addresses, shares: opts.shares };
    const ans = await client.json<PairAnswer>('/v1/pair', { method: 'POST', body: JSON.stringify(req), headers: { 'content-type': 'application/json' } });
    if (ans.id !== fingerprint) throw new FsError('EACCES', `${url} answered as ${ans.id}, not the invited ${fingerprint}`);
    db.transaction(() => {
      store.upsert({ id: fingerprint, name: uniqueName(store, ans.name, fingerprint), addresses: [url.replace(/\/$/, '')] });
      store.setShares(fingerprint, [...new Set([...store.sharesOf(fingerprint), ...opts.shares])]);
    }).immediate();
    return ans;
  } finally {
    client.close();
  }
}

/** Two peers called "laptop" would make `peer://laptop/...` ambiguous: suffix the short id. */
function uniqueName(store: PeerStore, name: string, id: string): string {
  const clean = name.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 48) || 'peer';
  const taken = store.list().some((p) => p.name === clean && p.id !== id);
  return taken ? `${clean}-${id.slice(0, 8)}` : clean;
}
