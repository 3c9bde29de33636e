import { syncIndex, type Db } from './db';
import type { EntryType } from '../core/provider';

/** A location this node owns, as the peer server needs it. */
export interface OwnLocationRow { id: number; name: string; uri: string; kind: string; created_at: number }

/** One entry of a location's tree with its path and its blob's block list (when known). */
export interface TreeRow {
  path: string; type: EntryType; size: number; mtime_sec: number; mtime_nsec: number; mode: number;
  version: string | null; hash: string | null; target: string | null; block_size: number | null; block_hashes: Buffer | null;
}

/** One row of the change log with the block list of the content it names (when known). */
export interface ChangeRow {
  seq: number; op: 'put' | 'delete' | 'move'; path: string; to_path: string | null; entry: string | null;
  size: number; block_size: number | null; block_hashes: Buffer | null;
}

/** A file entry holding some content. */
export interface HashHolderRow { id: number; loc: number; size: number; version: string | null }

/**
 * The queries the peer server answers from (what `mount/peer-server/serve-index.ts` turns into
 * wire shapes): the change log head, this node's own local locations, a location's tree, its
 * change log, and the files holding some content. Statements are prepared once. Methods throw
 * only SQLite errors.
 */
export class ServeQueries {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      head: db.prepare('SELECT coalesce(max(seq), 0) AS s FROM changes'),
      own: db.prepare(`SELECT l.id, l.name, l.uri, l.kind, l.created_at FROM locations l JOIN nodes n ON n.id = l.owner_node AND n.is_self = 1
        WHERE l.kind = 'local' AND l.name IN (SELECT value FROM json_each(?))`),
      tree: db.prepare(`
        WITH RECURSIVE t(id, path, depth) AS (
          SELECT id, '', 0 FROM entries WHERE location_id = ? AND parent_id IS NULL
          UNION ALL
          SELECT e.id, CASE WHEN t.path = '' THEN e.name ELSE t.path || '/' || e.name END, t.depth + 1 FROM entries e JOIN t ON e.parent_id = t.id
        )
        SELECT t.path, e.type, e.size, e.mtime_sec, e.mtime_nsec, e.mode, e.version, e.hash, e.target, b.block_size, b.block_hashes
        FROM t JOIN entries e ON e.id = t.id LEFT JOIN blobs b ON b.hash = e.hash ORDER BY t.depth`),
      changes: db.prepare(`SELECT c.seq, c.op, c.path, c.to_path, c.entry, b.size, b.block_size, b.block_hashes FROM changes c
        LEFT JOIN blobs b ON b.hash = json_extract(c.entry, '$.hash') WHERE c.seq > ? AND c.location_id = ? ORDER BY c.seq LIMIT ?`),
      holders: db.prepare(`SELECT id, location_id AS loc, size, version FROM entries WHERE hash = ? AND type = 'file' AND location_id IN (SELECT value FROM json_each(?)) LIMIT ?`),
      up: db.prepare('SELECT parent_id, name FROM entries WHERE id = ?'),
    };
  }

  /** The latest change sequence number (all locations); 0 when the log is empty. */
  headSeq(): number {
    return (this.s.head.get() as { s: number }).s;
  }

  /** Local locations this node owns, among `names`. */
  ownLocalLocations(names: readonly string[]): OwnLocationRow[] {
    if (names.length === 0) return [];
    return this.s.own.all(JSON.stringify(names)) as OwnLocationRow[];
  }

  /** A location's whole tree, parents before children. */
  tree(locationId: number): TreeRow[] {
    return this.s.tree.all(locationId) as TreeRow[];
  }

  /** Changes of a location after `since`, in order, at most `limit`. */
  changesAfter(locationId: number, since: number, limit: number): ChangeRow[] {
    return this.s.changes.all(since, locationId, limit) as ChangeRow[];
  }

  /** Up to `limit` file entries with content `hash` in the given locations. */
  holders(hash: string, locationIds: readonly number[], limit: number): HashHolderRow[] {
    return this.s.holders.all(hash, JSON.stringify(locationIds), limit) as HashHolderRow[];
  }

  /** The relative path of an entry within its location ('' for the root). */
  relPathOf(entryId: number): string {
    const parts: string[] = [];
    let cur = this.s.up.get(entryId) as { parent_id: number | null; name: string } | undefined;
    while (cur && cur.parent_id !== null) {
      parts.push(cur.name);
      cur = this.s.up.get(cur.parent_id) as { parent_id: number | null; name: string } | undefined;
    }
    return parts.reverse().join('/');
  }

  /**
   * Runs `fn` in one read transaction (its answers describe one instant), after making every
   * earlier commit durable: nothing leaves the node that a power loss could take back.
   */
  durableSnapshot<T>(fn: () => T): T {
    syncIndex(this.db);
    return this.db.transaction(fn)();
  }
}
