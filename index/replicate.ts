import type { Statement } from 'better-sqlite3';
import { FsError } from '../core/fs-error';
import { splitPath } from '../core/paths';
import type { ChangesPage, SnapshotHeader, SnapshotLine, WireBlob, WireEntry } from '../core/peer-protocol';
import { blockCount, HASH_BYTES, type BlobStore } from './blobs';
import type { Db } from './db';

/** What a replicated peer location keeps in `locations.options.peer`. */
export interface PeerLocationOptions {
  /** The location's name on its owner. */
  location: string;
  /** The owner's epoch of that location (see SharedLocation.epoch). */
  epoch?: string;
}

const HASH_RE = /^[0-9a-f]{64}$/;
/** What of a peer's `mode` we keep: rwx for owner, group and others. */
export const PEER_MODE_MASK = 0o777;
const TYPES = new Set(['file', 'dir', 'symlink']);

/** Throws EIO naming what is wrong: the peer is not trusted to send well-formed data. */
function checkEntry(e: WireEntry | null | undefined, where: string): WireEntry {
  const ok = e && TYPES.has(e.type) && Number.isSafeInteger(e.size) && e.size >= 0 && Number.isSafeInteger(e.mtimeSec) && Number.isSafeInteger(e.mtimeNsec)
    && Number.isSafeInteger(e.mode) && (e.hash === null || (typeof e.hash === 'string' && HASH_RE.test(e.hash)))
    && (e.target === null || typeof e.target === 'string') && (e.version === null || typeof e.version === 'string');
  if (!ok) throw new FsError('EIO', `the peer sent a malformed entry for ${JSON.stringify(where)}`);
  return e;
}

/**
 * Applies another node's index of one location to ours: a snapshot (backfill) and then its
 * change log, in order. Peer locations are written here with plain statements, **not** through
 * EntryStore, so they do not enter this node's own change log: the owner's log is the truth,
 * `locations.remote_seq` says how far we applied it, and nothing is re-published (a node serves
 * only locations it owns). An entry's `version` is set to its content hash, the token the peer
 * provider fetches by. Throws FsError EIO for malformed input, EINVAL for a bad path.
 */
export class ReplicaIndex {
  private readonly s: Record<string, Statement>;

  constructor(private readonly db: Db, private readonly blobs: BlobStore) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      root: p('SELECT id FROM entries WHERE location_id = ? AND parent_id IS NULL'),
      child: p('SELECT id, type FROM entries WHERE parent_id = ? AND name = ?'),
      insert: p(`INSERT INTO entries (location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, version, hash, target)
                 VALUES (@loc, @parent, @name, @type, @size, @mtimeSec, @mtimeNsec, @mode, @version, @hash, @target)`),
      update: p(`UPDATE entries SET type=@type, size=@size, mtime_sec=@mtimeSec, mtime_nsec=@mtimeNsec, mode=@mode, version=@version, hash=@hash, target=@target WHERE id=@id`),
      remove: p('DELETE FROM entries WHERE id = ?'),
      move: p('UPDATE entries SET parent_id = ?, name = ? WHERE id = ?'),
      clearChildren: p('DELETE FROM entries WHERE location_id = ? AND parent_id IS NOT NULL'),
      clearAll: p('DELETE FROM entries WHERE location_id = ?'),
      seq: p('SELECT remote_seq AS seq, options FROM locations WHERE id = ?'),
      setSeq: p('UPDATE locations SET remote_seq = ?, options = ? WHERE id = ?'),
    };
  }

  /** The last applied sequence and the epoch it belongs to. */
  state(locId: number): { seq: number; options: PeerLocationOptions } {
    const r = this.s.seq.get(locId) as { seq: number; options: string } | undefined;
    if (!r) throw new FsError('ENOENT', `location ${locId} is gone`);
    const opts = JSON.parse(r.options) as { peer?: PeerLocationOptions };
    return { seq: r.seq, options: opts.peer ?? { location: '' } };
  }

  private setState(locId: number, seq: number, epoch: string): void {
    const r = this.s.seq.get(locId) as { options: string };
    const opts = JSON.parse(r.options) as { peer?: PeerLocationOptions };
    opts.peer = { ...(opts.peer ?? { location: '' }), epoch };
    this.s.setSeq.run(seq, JSON.stringify(opts), locId);
  }

  private fields(e: WireEntry): Record<string, unknown> {
    // Permission bits only: no setuid/setgid/sticky from another node, and the file type is our
    // own `type` column, never bits of the peer's mode (FUSE ORs the two).
    return { type: e.type, size: e.size, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, mode: e.mode & PEER_MODE_MASK, version: e.type === 'file' ? e.hash : null, hash: e.hash, target: e.target };
  }

  private putBlob(locId: number, b: WireBlob | undefined, e: WireEntry): void {
    if (!b || !e.hash) return;
    const hashes = Buffer.from(b.blockHashes, 'base64');
    const ok = Number.isSafeInteger(b.blockSize) && b.blockSize > 0 && b.size === e.size && hashes.length === HASH_BYTES * blockCount(b.size, b.blockSize)
      // A one-block blob's block hash is its hash: a peer cannot make us trust a wrong one.
      && (blockCount(b.size, b.blockSize) !== 1 || hashes.toString('hex') === e.hash);
    if (!ok) throw new FsError('EIO', `the peer sent inconsistent block hashes for ${e.hash.slice(0, 16)}`);
    // Kept for this location only: a peer never defines how content read elsewhere is verified.
    this.blobs.putFromPeer(locId, { hash: e.hash, size: b.size, blockSize: b.blockSize, blockHashes: hashes });
  }

  /** Replaces the whole replicated tree by a snapshot, in one transaction. */
  applySnapshot(locId: number, header: SnapshotHeader, lines: SnapshotLine[]): void {
    this.db.transaction(() => {
      this.s.clearChildren.run(locId);
      this.s.clearAll.run(locId);
      this.blobs.forgetPeerLists(locId);
      const ids = new Map<string, number>();
      for (const l of lines) {
        const e = checkEntry(l.entry, l.path);
        const parts = splitPath(l.path);
        const rel = parts.join('/');
        if (ids.has(rel)) throw new FsError('EIO', `the peer sent ${JSON.stringify(rel)} twice`);
        let parent: number | null = null;
        if (parts.length > 0) {
          const p = ids.get(parts.slice(0, -1).join('/'));
          if (p === undefined) throw new FsError('EIO', `the peer sent ${JSON.stringify(rel)} before its directory`);
          parent = p;
        } else if (e.type !== 'dir') throw new FsError('EIO', 'the peer sent a root that is not a directory');
        this.putBlob(locId, l.blob, e);
        const id = Number(this.s.insert.run({ loc: locId, parent, name: parts.at(-1) ?? '', ...this.fields(e) }).lastInsertRowid);
        ids.set(rel, id);
      }
      this.setState(locId, header.seq, header.epoch);
    }).immediate();
  }

  /** Applies one page of changes in order and records `page.next`, in one transaction. */
  applyChanges(locId: number, page: ChangesPage): void {
    this.db.transaction(() => {
      for (const c of page.changes) {
        if (c.op === 'put') {
          const e = checkEntry(c.entry, c.path);
          this.putBlob(locId, c.blob, e);
          this.put(locId, c.path, e);
        } else if (c.op === 'delete') {
          const id = this.resolve(locId, c.path);
          if (id !== undefined) this.s.remove.run(id);
        } else if (c.op === 'move') {
          if (typeof c.toPath !== 'string') throw new FsError('EIO', 'the peer sent a move without a target');
          this.move(locId, c.path, c.toPath);
        } else throw new FsError('EIO', `the peer sent an unknown change ${JSON.stringify((c as { op: unknown }).op)}`);
      }
      this.setState(locId, page.next, page.epoch);
    }).immediate();
  }

  private resolve(locId: number, path: string): number | undefined {
    let cur = (this.s.root.get(locId) as { id: number } | undefined)?.id;
    for (const part of splitPath(path)) {
      if (cur === undefined) return undefined;
      cur = (this.s.child.get(cur, part) as { id: number } | undefined)?.id;
    }
    return cur;
  }

  /** The directory that holds `parts`, creating missing ones (a log that starts mid-tree stays usable). */
  private dirFor(locId: number, parts: string[]): number {
    let cur = (this.s.root.get(locId) as { id: number } | undefined)?.id;
    if (cur === undefined) cur = Number(this.s.insert.run({ loc: locId, parent: null, name: '', ...this.fields(DIR) }).lastInsertRowid);
    for (const part of parts) {
      const c = this.s.child.get(cur, part) as { id: number; type: string } | undefined;
      if (c && c.type === 'dir') cur = c.id;
      else {
        if (c) this.s.remove.run(c.id);
        cur = Number(this.s.insert.run({ loc: locId, parent: cur, name: part, ...this.fields(DIR) }).lastInsertRowid);
      }
    }
    return cur;
  }

  private put(locId: number, path: string, e: WireEntry): void {
    const parts = splitPath(path);
    if (parts.length === 0) {
      const root = this.s.root.get(locId) as { id: number } | undefined;
      if (root) this.s.update.run({ id: root.id, ...this.fields(e) });
      else this.s.insert.run({ loc: locId, parent: null, name: '', ...this.fields(e) });
      return;
    }
    const parent = this.dirFor(locId, parts.slice(0, -1));
    const name = parts[parts.length - 1];
    const old = this.s.child.get(parent, name) as { id: number; type: string } | undefined;
    if (old && old.type === e.type) return void this.s.update.run({ id: old.id, ...this.fields(e) });
    if (old) this.s.remove.run(old.id);
    this.s.insert.run({ loc: locId, parent, name, ...this.fields(e) });
  }

  private move(locId: number, from: string, to: string): void {
    const id = this.resolve(locId, from);
    if (id === undefined) return; // already gone: a later change will say what is there
    const parts = splitPath(to);
    if (parts.length === 0) throw new FsError('EIO', 'the peer sent a move onto the root');
    const parent = this.dirFor(locId, parts.slice(0, -1));
    const name = parts[parts.length - 1];
    const existing = this.s.child.get(parent, name) as { id: number } | undefined;
    if (existing && existing.id !== id) this.s.remove.run(existing.id);
    this.s.move.run(parent, name, id);
  }
}

const DIR: WireEntry = { type: 'dir', size: 0, mtimeSec: 0, mtimeNsec: 0, mode: 0o755, version: null, hash: null, target: null };
