import { syncIndex, type Db } from '../../index/db';
import { FsError } from '../../core/fs-error';
import type { ChangesPage, SharedLocation, SnapshotHeader, SnapshotLine, WireBlob, WireChange, WireEntry } from '../../core/peer-protocol';
import { PeerStore } from '../../index/peer-store';
import { HiddenRels, isHiddenRel } from '../../index/state-paths';

interface LocRow { id: number; name: string; uri: string; kind: string; created_at: number }

interface EntryRow {
  path: string; type: WireEntry['type']; size: number; mtime_sec: number; mtime_nsec: number; mode: number;
  version: string | null; hash: string | null; target: string | null; block_size: number | null; block_hashes: Buffer | null;
}

/** A change page stops growing past this many bytes (readers refuse pages over PEER_MAX_PAGE_BYTES). */
const PAGE_BYTES = 8 * 1024 * 1024;

export function epochOf(l: { id: number; created_at: number }): string {
  return `${l.id}.${l.created_at}`;
}

function wireBlob(r: { size: number; block_size: number | null; block_hashes: Buffer | null }): WireBlob | undefined {
  return r.block_size && r.block_hashes ? { size: r.size, blockSize: r.block_size, blockHashes: r.block_hashes.toString('base64') } : undefined;
}

/**
 * What this node answers other nodes, read from its index: shared locations, snapshots, the
 * change feed and where a blob lives. Only locations this node owns and shares with the asking
 * peer are ever visible. Methods throw FsError ENOENT (not shared / unknown) or EINVAL.
 */
export class ServeIndex {
  private readonly peers: PeerStore;

  private readonly hidden: HiddenRels;

  constructor(private readonly db: Db, statePaths: readonly string[] = []) {
    this.peers = new PeerStore(db);
    this.hidden = new HiddenRels(statePaths);
  }

  headSeq(): number {
    return (this.db.prepare('SELECT coalesce(max(seq), 0) AS s FROM changes').get() as { s: number }).s;
  }

  private sharedRows(peerId: string): LocRow[] {
    const names = this.peers.sharesOf(peerId);
    if (names.length === 0) return [];
    const rows = this.db.prepare(`SELECT l.id, l.name, l.uri, l.kind, l.created_at FROM locations l JOIN nodes n ON n.id = l.owner_node AND n.is_self = 1
      WHERE l.kind = 'local' AND l.name IN (SELECT value FROM json_each(?))`).all(JSON.stringify(names)) as LocRow[];
    return rows;
  }

  locations(peerId: string): SharedLocation[] {
    const seq = this.headSeq();
    return this.sharedRows(peerId).map((l) => ({ name: l.name, epoch: epochOf(l), seq }));
  }

  /** Throws ENOENT when the location is not shared with this peer (same answer as "does not exist": nothing leaks). */
  shared(peerId: string, name: string): LocRow {
    const l = this.sharedRows(peerId).find((r) => r.name === name);
    if (!l) throw new FsError('ENOENT', `no shared location ${JSON.stringify(name)}`);
    return l;
  }

  /** The whole tree of a shared location at one instant, parents before children, with the change seq it reflects. */
  snapshot(peerId: string, name: string): { header: SnapshotHeader; lines: SnapshotLine[] } {
    const l = this.shared(peerId, name);
    syncIndex(this.db); // nothing leaves the node that a power loss could take back
    // One read transaction: the tree and the sequence number describe the same instant.
    return this.db.transaction(() => {
      const seq = this.headSeq();
      const rows = this.db.prepare(`
        WITH RECURSIVE t(id, path, depth) AS (
          SELECT id, '', 0 FROM entries WHERE location_id = ? AND parent_id IS NULL
          UNION ALL
          SELECT e.id, CASE WHEN t.path = '' THEN e.name ELSE t.path || '/' || e.name END, t.depth + 1 FROM entries e JOIN t ON e.parent_id = t.id
        )
        SELECT t.path, e.type, e.size, e.mtime_sec, e.mtime_nsec, e.mode, e.version, e.hash, e.target, b.block_size, b.block_hashes
        FROM t JOIN entries e ON e.id = t.id LEFT JOIN blobs b ON b.hash = e.hash ORDER BY t.depth`).all(l.id) as EntryRow[];
      const hidden = this.hidden.of(l.uri);
      const lines = rows.filter((r) => !isHiddenRel(r.path, hidden)).map((r): SnapshotLine => {
        const line: SnapshotLine = { path: r.path, entry: { type: r.type, size: r.size, mtimeSec: r.mtime_sec, mtimeNsec: r.mtime_nsec, mode: r.mode, version: r.version, hash: r.hash, target: r.target } };
        const b = wireBlob(r);
        if (b) line.blob = b;
        return line;
      });
      return { header: { location: l.name, epoch: epochOf(l), seq, count: lines.length }, lines };
    })();
  }

  /** Changes of a shared location after `since`, in order, at most `limit`. */
  changes(peerId: string, name: string, since: number, limit: number): ChangesPage {
    const l = this.shared(peerId, name);
    syncIndex(this.db); // nothing leaves the node that a power loss could take back
    return this.db.transaction(() => {
      const head = this.headSeq();
      const rows = this.db.prepare(`SELECT c.seq, c.op, c.path, c.to_path, c.entry, b.size, b.block_size, b.block_hashes FROM changes c
        LEFT JOIN blobs b ON b.hash = json_extract(c.entry, '$.hash') WHERE c.seq > ? AND c.location_id = ? ORDER BY c.seq LIMIT ?`)
        .all(since, l.id, limit) as { seq: number; op: WireChange['op']; path: string; to_path: string | null; entry: string | null; size: number; block_size: number | null; block_hashes: Buffer | null }[];
      const hidden = this.hidden.of(l.uri);
      // Pages are bounded in bytes too (block lists of huge files are big), so a reader can
      // refuse oversized answers: at least one change, then stop past PAGE_BYTES. Changes under
      // vdfs state folders are skipped but still move the page forward (`last`).
      const changes: WireChange[] = [];
      let bytes = 0;
      let last = since;
      let consumed = 0;
      for (const r of rows) {
        if (changes.length > 0 && bytes > PAGE_BYTES) break;
        consumed++;
        last = r.seq;
        if (isHiddenRel(r.path, hidden) || (r.to_path !== null && isHiddenRel(r.to_path, hidden))) continue;
        const c: WireChange = { seq: r.seq, op: r.op, path: r.path, toPath: r.to_path, entry: r.entry ? (JSON.parse(r.entry) as WireEntry) : null };
        const b = wireBlob(r);
        if (b) c.blob = b;
        bytes += (r.entry?.length ?? 0) + r.path.length + (r.to_path?.length ?? 0) + (b?.blockHashes.length ?? 0) + 100;
        changes.push(c);
      }
      const more = rows.length === limit || consumed < rows.length;
      return { epoch: epochOf(l), changes, next: more ? last : Math.max(head, since), more };
    })();
  }

  /**
   * Where to read a blob for this peer: a file with that hash in a location shared with it.
   * Throws ENOENT otherwise (an unknown hash and an unshared one look the same).
   */
  blobFile(peerId: string, hash: string): { root: string; rel: string; size: number; version: string | null } {
    const locs = this.sharedRows(peerId);
    if (locs.length === 0) throw new FsError('ENOENT', 'no such blob');
    const candidates = this.db.prepare(`SELECT id, location_id AS loc, size, version FROM entries WHERE hash = ? AND type = 'file' AND location_id IN (SELECT value FROM json_each(?)) LIMIT 16`)
      .all(hash, JSON.stringify(locs.map((l) => l.id))) as { id: number; loc: number; size: number; version: string | null }[];
    const up = this.db.prepare('SELECT parent_id, name FROM entries WHERE id = ?');
    for (const e of candidates) {
      const parts: string[] = [];
      let cur: { parent_id: number | null; name: string } | undefined = { parent_id: e.id, name: '' };
      while (cur && cur.parent_id !== null) {
        cur = up.get(cur.parent_id) as { parent_id: number | null; name: string } | undefined;
        if (cur && cur.parent_id !== null) parts.push(cur.name);
      }
      const root = locs.find((l) => l.id === e.loc)!.uri;
      const rel = parts.reverse().join('/');
      if (!this.hidden.hides(root, rel)) return { root, rel, size: e.size, version: e.version };
    }
    throw new FsError('ENOENT', 'no such blob');
  }
}
