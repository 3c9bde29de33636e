import type { Db } from './db';

/**
 * This node's own row in `nodes` (peers are in PeerStore), and every node's display name.
 * Methods throw SqliteError when the index cannot be read or written.
 */
export class NodeStore {
  constructor(private readonly db: Db) {}

  /** This node's id, or undefined in an index made before it had one. */
  selfId(): string | undefined {
    return (this.db.prepare('SELECT id FROM nodes WHERE is_self = 1').get() as { id: string } | undefined)?.id;
  }

  /** Creates the self row with `id` and `name` when missing; otherwise leaves the id and sets the name. */
  ensureSelf(id: string, name: string): void {
    if (this.selfId() === undefined) this.db.prepare('INSERT INTO nodes (id, name, is_self) VALUES (?, ?, 1)').run(id, name);
    else this.db.prepare('UPDATE nodes SET name = ? WHERE is_self = 1').run(name);
  }

  /**
   * Makes the self row carry `id` (the certificate fingerprint once keys exist), creating it with
   * `name` when missing. Rows that point at it follow (locations.owner_node: ON UPDATE CASCADE).
   */
  setSelfId(id: string, name: string): void {
    const cur = this.selfId();
    if (cur === undefined) this.db.prepare('INSERT INTO nodes (id, name, is_self) VALUES (?, ?, 1)').run(id, name);
    else if (cur !== id) this.db.prepare('UPDATE nodes SET id = ? WHERE is_self = 1').run(id);
  }

  /** Every known node's name, by id (this one and the paired ones). */
  names(): Map<string, string> {
    const rows = this.db.prepare('SELECT id, name FROM nodes').all() as { id: string; name: string }[];
    return new Map(rows.map((n) => [n.id, n.name]));
  }
}
