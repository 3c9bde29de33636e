import { openDb, syncIndex, type Db } from './db';
import { binOf, hexOf } from './hash-sql';
import type { EntryType } from '../core/provider';

/** A location this node owns, as the peer server needs it. */
export interface OwnLocationRow {
  id: number;
  name: string;
  uri: string;
  kind: string;
  created_at: number;
}

/** One entry of a location's tree with its path and its blob's block list (when known). */
export interface TreeRow {
  id: number;
  name: string;
  path: string;
  type: EntryType;
  size: number;
  mtime_sec: number;
  mtime_nsec: number;
  mode: number;
  version: string | null;
  hash: string | null;
  target: string | null;
  block_size: number | null;
  block_hashes: Buffer | null;
}

/** One row of the change log with the block list of the content it names (when known). */
export interface ChangeRow {
  seq: number;
  op: 'put' | 'delete' | 'move';
  path: string;
  to_path: string | null;
  entry: string | null;
  size: number;
  block_size: number | null;
  block_hashes: Buffer | null;
}

/** A file entry holding some content. */
export interface HashHolderRow {
  id: number;
  loc: number;
  size: number;
  version: string | null;
}

/**
 * The queries the peer server answers from (what `app/peer/serve-index.ts` turns into
 * wire shapes): the change log head, this node's own local locations, a location's tree (streamed), its
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
      changes: db.prepare(`SELECT c.seq, c.op, c.path, c.to_path, c.entry, b.size, b.block_size, b.block_hashes FROM changes c
        LEFT JOIN blobs b ON b.hash = ${binOf("json_extract(c.entry, '$.hash')")} WHERE c.seq > ? AND c.location_id = ? ORDER BY c.seq LIMIT ?`),
      holders: db.prepare(
        `SELECT id, location_id AS loc, size, version FROM entries WHERE hash = ${binOf('?')} AND type = 'file' AND location_id IN (SELECT value FROM json_each(?)) LIMIT ?`,
      ),
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

  /**
   * A location's tree at one instant, streamed: rows are read as the caller iterates, on a
   * read-only connection of its own holding one read transaction (WAL: writers go on), so only
   * one directory's cursor and the directories still to visit are held, never the tree. Parents
   * come before children; `skip(path)` drops an entry with its subtree. Earlier commits are made
   * durable first. The caller must `close()` it, also when it stops early.
   */
  openTree(locationId: number, skip: (path: string) => boolean): TreeSnapshot {
    syncIndex(this.db);
    // Its own page cache, small: a snapshot reads each page about once.
    const rdb = openDb(this.db.name, { readonly: true, memory: { cacheBytes: 4 * 1024 ** 2, mmapBytes: 0 } });
    try {
      rdb.exec('BEGIN'); // the tree and the sequence number describe the same instant
      const seq = (rdb.prepare('SELECT coalesce(max(seq), 0) AS s FROM changes').get() as { s: number }).s;
      const root = rdb.prepare('SELECT id FROM entries WHERE location_id = ? AND parent_id IS NULL').pluck().get(locationId) as number | undefined;
      return { seq, rows: treeRows(rdb, root, skip), close: () => rdb.close() };
    } catch (err) {
      rdb.close();
      throw err;
    }
  }
}

/** A streamed tree: the change seq it reflects, its rows (read lazily) and the connection to close. */
export interface TreeSnapshot {
  seq: number;
  rows: Generator<TreeRow>;
  close(): void;
}

/** Depth first: each directory's children in one query (one cursor open at a time), sub-directories after. */
function* treeRows(rdb: Db, rootId: number | undefined, skip: (path: string) => boolean): Generator<TreeRow> {
  if (rootId === undefined) return;
  const cols = `e.id, e.name, e.type, e.size, e.mtime_sec, e.mtime_nsec, e.mode, e.version, ${hexOf('e.hash')} AS hash, e.target, b.block_size, b.block_hashes
    FROM entries e LEFT JOIN blobs b ON b.hash = e.hash`;
  // Raw rows made into objects here, path included: better-sqlite3's row objects plus a copy
  // with the path cost ~40 % more of a million-entry snapshot's reading.
  const one = rdb.prepare(`SELECT ${cols} WHERE e.id = ?`).raw(true);
  const children = rdb.prepare(`SELECT ${cols} WHERE e.parent_id = ?`).raw(true);
  yield treeRow(one.get(rootId) as RawTreeRow, '');
  const dirs: { id: number; path: string }[] = [{ id: rootId, path: '' }];
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    for (const r of children.iterate(dir.id) as IterableIterator<RawTreeRow>) {
      const path = dir.path === '' ? r[1] : `${dir.path}/${r[1]}`;
      if (skip(path)) continue;
      if (r[2] === 'dir') dirs.push({ id: r[0], path });
      yield treeRow(r, path);
    }
  }
}

/** A TreeRow's columns in SELECT order. */
type RawTreeRow = [number, string, EntryType, number, number, number, number, string | null, string | null, string | null, number | null, Buffer | null];

function treeRow(r: RawTreeRow, path: string): TreeRow {
  return {
    id: r[0],
    name: r[1],
    path,
    type: r[2],
    size: r[3],
    mtime_sec: r[4],
    mtime_nsec: r[5],
    mode: r[6],
    version: r[7],
    hash: r[8],
    target: r[9],
    block_size: r[10],
    block_hashes: r[11],
  };
}
