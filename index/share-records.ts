import type { Db } from './db';
import { sharesChanged } from './share-epoch';

/** `meta` key of what is shared with one peer: a JSON array of location names. */
export const SHARE_KEY = (peerId: string): string => `peer.share.${peerId}`;
/** `meta` key prefix of a pending invitation (followed by the token's SHA-256). */
export const INVITE_PREFIX = 'peer.invite.';

/**
 * Forgets every grant that names the location `name`: it leaves each peer's share list, and each
 * pending invitation that would share it is deleted (the invitee asked for that folder, not for
 * whatever gets the name next). Shares are by name, so without this a new folder added later
 * under the same name would be shared silently. Run inside the transaction that removes the
 * location. Throws what SQLite throws.
 */
export function forgetLocationGrants(db: Db, name: string): void {
  const rows = db.prepare("SELECT key, value FROM meta WHERE key LIKE 'peer.share.%' OR key LIKE 'peer.invite.%'").all() as { key: string; value: string }[];
  for (const r of rows) {
    if (r.key.startsWith(INVITE_PREFIX)) {
      const inv = JSON.parse(r.value) as { shares?: string[] };
      if (inv.shares?.includes(name)) db.prepare('DELETE FROM meta WHERE key = ?').run(r.key);
      continue;
    }
    const names = JSON.parse(r.value) as string[];
    if (names.includes(name)) db.prepare('UPDATE meta SET value = ? WHERE key = ?').run(JSON.stringify(names.filter((n) => n !== name)), r.key);
  }
  sharesChanged(db);
}
