import type { Statement } from 'better-sqlite3';
import { FsError } from '../core/fs-error';
import { splitPath } from '../core/paths';
import type { ChangesPage, SnapshotHeader, SnapshotLine, WireBlob, WireEntry } from '../core/peer-protocol';
import { blockCount, HASH_BYTES, type BlobStore } from './blobs';
import { relaxedTransaction, type Db } from './db';
import { binOf } from './hash-sql';
import { dropHashIndex, restoreHashIndex } from './bulk-index';

/** What a replicated peer location keeps in `locations.options.peer`. */
export interface PeerLocationOptions {
  /** The location's name on its owner. */
  location: string;
  /** The owner's epoch of that location (see SharedLocation.epoch). */
  epoch?: string;
  /**
   * The process streaming the location's first snapshot (`vdfs location add`): while it is
   * alive, a running daemon leaves the location alone instead of starting a second snapshot.
   */
  receiving?: number;
}

const HASH_RE = /^[0-9a-f]{64}$/;
/** What of a peer's `mode` we keep: rwx for owner, group and others. */
export const PEER_MODE_MASK = 0o777;
const TYPES = new Set(['file', 'dir', 'symlink']);

/** Throws EIO naming what is wrong: the peer is not trusted to send well-formed data. */
function checkEntry(e: WireEntry | null | undefined, where: string): WireEntry {
  const ok =
    e &&
    TYPES.has(e.type) &&
    Number.isSafeInteger(e.size) &&
    e.size >= 0 &&
    Number.isSafeInteger(e.mtimeSec) &&
    Number.isSafeInteger(e.mtimeNsec) &&
    Number.isSafeInteger(e.mode) &&
    (e.hash === null || (typeof e.hash === 'string' && HASH_RE.test(e.hash))) &&
    (e.target === null || typeof e.target === 'string') &&
    (e.version === null || typeof e.version === 'string');
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

  constructor(
    private readonly db: Db,
    private readonly blobs: BlobStore,
  ) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      root: p('SELECT id FROM entries WHERE location_id = ? AND parent_id IS NULL'),
      isDir: p("SELECT type = 'dir' FROM entries WHERE id = ?").pluck(),
      child: p('SELECT id, type FROM entries WHERE parent_id = ? AND name = ?'),
      insert: p(`INSERT INTO entries (location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, version, hash, target)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ${binOf('?')}, ?)`),
      update: p(
        `UPDATE entries SET type=@type, size=@size, mtime_sec=@mtimeSec, mtime_nsec=@mtimeNsec, mode=@mode, version=@version, hash=${binOf('@hash')}, target=@target WHERE id=@id`,
      ),
      remove: p('DELETE FROM entries WHERE id = ?'),
      move: p('UPDATE entries SET parent_id = ?, name = ? WHERE id = ?'),
      clearChildren: p('DELETE FROM entries WHERE location_id = ? AND parent_id IS NOT NULL'),
      clearAll: p('DELETE FROM entries WHERE location_id = ?'),
      seq: p('SELECT remote_seq AS seq, options FROM locations WHERE id = ?'),
      setSeq: p('UPDATE locations SET remote_seq = ?, options = ? WHERE id = ?'),
    };
  }

  /** Runs `fn` in one immediate write transaction. */
  transaction(fn: () => void): void {
    this.db.transaction(fn).immediate();
  }

  /**
   * One batch of a snapshot, committed without an fsync (synchronous=NORMAL): the location's
   * starting point is written only by finishSnapshot, a FULL commit that makes every batch
   * durable; a snapshot cut off by a power loss is started over.
   */
  batchTransaction(fn: () => void): void {
    relaxedTransaction(this.db, fn);
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
    delete opts.peer.receiving;
    this.s.setSeq.run(seq, JSON.stringify(opts), locId);
  }

  /** Positional: binding an object by name cost ~15 % of each insert (a snapshot's million). */
  private insertRow(loc: number, parent: number | null, name: string, e: WireEntry): { lastInsertRowid: number | bigint } {
    const f = this.fields(e);
    return this.s.insert.run(loc, parent, name, f.type, f.size, f.mtimeSec, f.mtimeNsec, f.mode, f.version, f.hash, f.target);
  }

  private fields(e: WireEntry) {
    // Permission bits only: no setuid/setgid/sticky from another node, and the file type is our
    // own `type` column, never bits of the peer's mode (FUSE ORs the two).
    return {
      type: e.type,
      size: e.size,
      mtimeSec: e.mtimeSec,
      mtimeNsec: e.mtimeNsec,
      mode: e.mode & PEER_MODE_MASK,
      version: e.type === 'file' ? e.hash : null,
      hash: e.hash,
      target: e.target,
    };
  }

  private putBlob(locId: number, b: WireBlob | undefined, e: WireEntry): void {
    if (!b || !e.hash) return;
    const hashes = Buffer.from(b.blockHashes, 'base64');
    const ok =
      Number.isSafeInteger(b.blockSize) &&
      b.blockSize > 0 &&
      b.size === e.size &&
      hashes.length === HASH_BYTES * blockCount(b.size, b.blockSize) &&
      // A one-block blob's block hash is its hash: a peer cannot make us trust a wrong one.
      (blockCount(b.size, b.blockSize) !== 1 || hashes.toString('hex') === e.hash);
    if (!ok) throw new FsError('EIO', `the peer sent inconsistent block hashes for ${e.hash.slice(0, 16)}`);
    // Kept for this location only: a peer never defines how content read elsewhere is verified.
    this.blobs.putFromPeer(locId, { hash: e.hash, size: b.size, blockSize: b.blockSize, blockHashes: hashes });
  }

  /**
   * Starts replacing the replicated tree by a snapshot that arrives line by line: clears the
   * tree and forgets the starting point (so a snapshot cut off half-way is never followed by
   * the change feed: the next attempt starts over). See SnapshotWriter.
   */
  beginSnapshot(locId: number, header: SnapshotHeader): SnapshotWriter {
    if (typeof header?.seq !== 'number' || typeof header.epoch !== 'string') throw new FsError('EIO', 'the peer sent a malformed snapshot header');
    this.db
      .transaction(() => {
        this.s.clearChildren.run(locId);
        this.s.clearAll.run(locId);
        this.blobs.forgetPeerLists(locId);
        const opts = JSON.parse((this.s.seq.get(locId) as { options: string }).options) as { peer?: PeerLocationOptions };
        if (opts.peer) delete opts.peer.epoch;
        this.s.setSeq.run(0, JSON.stringify(opts), locId);
      })
      .immediate();
    return new SnapshotWriter(this, locId, header);
  }

  /** Writes one snapshot line (parents come first). Throws EIO for a malformed or misplaced line. */
  writeSnapshotLine(locId: number, l: SnapshotLine, parentOf: (dir: string) => number | undefined): { rel: string; id: number; dir: boolean } {
    const e = checkEntry(l?.entry, l?.path);
    if (typeof l.path !== 'string') throw new FsError('EIO', 'the peer sent a snapshot line without a path');
    const parts = splitPath(l.path);
    const rel = parts.join('/');
    let parent: number | null = null;
    if (parts.length > 0) {
      const p = parentOf(parts.slice(0, -1).join('/'));
      if (p === undefined) throw new FsError('EIO', `the peer sent ${JSON.stringify(rel)} before its directory`);
      parent = p;
    } else if (e.type !== 'dir') throw new FsError('EIO', 'the peer sent a root that is not a directory');
    this.putBlob(locId, l.blob, e);
    const name = parts.at(-1) ?? '';
    try {
      const id = Number(this.insertRow(locId, parent, name, e).lastInsertRowid);
      return { rel, id, dir: e.type === 'dir' };
    } catch (err) {
      // entries_child / entries_root are unique: a second line for one path.
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new FsError('EIO', `the peer sent ${JSON.stringify(rel)} twice`);
      throw err;
    }
  }

  /** A directory of a replicated location by path (for a snapshot line whose parent is no longer remembered). */
  dirId(locId: number, rel: string): number | undefined {
    const id = this.resolve(locId, rel);
    if (id === undefined) return undefined;
    return (this.s.isDir.get(id) as number | undefined) === 1 ? id : undefined;
  }

  /** Records how far the location is replicated: after a complete snapshot, or a page of changes. */
  finishSnapshot(locId: number, header: SnapshotHeader, indexDropped = false): void {
    this.db
      .transaction(() => {
        if (indexDropped) restoreHashIndex(this.db);
        this.setState(locId, header.seq, header.epoch);
      })
      .immediate();
  }

  /** A big snapshot's bulk insert goes on without the content-hash index (index/bulk-index.ts). */
  dropHashIndex(): void {
    dropHashIndex(this.db);
  }

  /** The content-hash index back after a snapshot that failed half-way. Never throws (the next open repairs it). */
  restoreHashIndex(): void {
    try {
      this.db.transaction(() => restoreHashIndex(this.db)).immediate();
    } catch {
      // openDb() builds it again.
    }
  }

  /** Applies one page of changes in order and records `page.next`, in one transaction. */
  applyChanges(locId: number, page: ChangesPage): void {
    this.db
      .transaction(() => {
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
      })
      .immediate();
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
    if (cur === undefined) cur = Number(this.insertRow(locId, null, '', DIR).lastInsertRowid);
    for (const part of parts) {
      const c = this.s.child.get(cur, part) as { id: number; type: string } | undefined;
      if (c && c.type === 'dir') cur = c.id;
      else {
        if (c) this.s.remove.run(c.id);
        cur = Number(this.insertRow(locId, cur, part, DIR).lastInsertRowid);
      }
    }
    return cur;
  }

  private put(locId: number, path: string, e: WireEntry): void {
    const parts = splitPath(path);
    if (parts.length === 0) {
      const root = this.s.root.get(locId) as { id: number } | undefined;
      if (root) this.s.update.run({ id: root.id, ...this.fields(e) });
      else this.insertRow(locId, null, '', e);
      return;
    }
    const parent = this.dirFor(locId, parts.slice(0, -1));
    const name = parts[parts.length - 1];
    const old = this.s.child.get(parent, name) as { id: number; type: string } | undefined;
    if (old && old.type === e.type) return void this.s.update.run({ id: old.id, ...this.fields(e) });
    if (old) this.s.remove.run(old.id);
    this.insertRow(locId, parent, name, e);
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

/** Snapshot lines written per transaction: large enough for throughput, small enough not to hold the index for long. */
const SNAPSHOT_BATCH = 5000;
/** Lines after which a snapshot sets the content-hash index aside until its end (index/bulk-index.ts). */
const BULK_LINES = 50_000;
/** Directory ids remembered by path while a snapshot streams in; others are looked up in the index. */
const DIR_MEMORY = 10_000;

/**
 * Applies a snapshot as its lines arrive, in transactions of SNAPSHOT_BATCH lines: memory is
 * one batch and a bounded map of directory ids, whatever the tree's size. The location's
 * starting point (seq, epoch) is written only by `end`, once the count matches. `add` and
 * `end` throw FsError EIO for a malformed, misplaced, duplicated or missing line.
 */
export class SnapshotWriter {
  private readonly batch: SnapshotLine[] = [];
  private readonly dirs = new Map<string, number>();
  /** Lines written so far. */
  count = 0;
  private indexDropped = false;

  constructor(
    private readonly replica: ReplicaIndex,
    private readonly locId: number,
    readonly header: SnapshotHeader,
  ) {}

  add(line: SnapshotLine): void {
    this.batch.push(line);
    if (this.batch.length >= SNAPSHOT_BATCH) this.flush();
  }

  /** The end line said `count` entries were sent: checks it and records the starting point. */
  end(count: number): void {
    this.flush();
    if (count !== this.count) throw new FsError('EIO', `the peer's snapshot ended after ${this.count} entries, it announced ${count}`);
    this.replica.finishSnapshot(this.locId, this.header, this.indexDropped);
    this.indexDropped = false;
  }

  /** After a failure: puts back what the snapshot set aside. Never throws. */
  abandon(): void {
    if (this.indexDropped) this.replica.restoreHashIndex();
    this.indexDropped = false;
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const lines = this.batch.splice(0);
    this.replica.batchTransaction(() => {
      if (!this.indexDropped && this.count + lines.length >= BULK_LINES) {
        this.replica.dropHashIndex();
        this.indexDropped = true;
      }
      for (const l of lines) {
        const w = this.replica.writeSnapshotLine(this.locId, l, (dir) => this.dirs.get(dir) ?? this.replica.dirId(this.locId, dir));
        if (!w.dir) continue;
        if (this.dirs.size >= DIR_MEMORY) this.dirs.delete(this.dirs.keys().next().value!);
        this.dirs.set(w.rel, w.id);
      }
    });
    this.count += lines.length;
  }
}
