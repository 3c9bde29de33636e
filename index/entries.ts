import type { Statement } from 'better-sqlite3';
import { FsError } from '../core/fs-error';
import { splitPath } from '../core/paths';
import { isSpecial, type EntryType } from '../core/provider';
import type { Db } from './db';
import { binOf, hexOf } from './hash-sql';
import { shareEpoch } from './share-epoch';

export interface Entry {
  id: number;
  locationId: number;
  parentId: number | null;
  name: string;
  type: EntryType;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  mode: number;
  version: string | null;
  hash: string | null;
  target: string | null;
  /** Device number of a chardev or blockdev (Linux encoding); null otherwise. */
  rdev: number | null;
}

/** The fields of an entry that a change sets (`rdev` only for devices: absent means null). */
export type EntryFields = Pick<Entry, 'type' | 'size' | 'mtimeSec' | 'mtimeNsec' | 'mode' | 'version' | 'hash' | 'target'> & { rdev?: number | null };

/** Rows per statement of insertMany (12 values each, well under SQLite's 32,766 variables). */
const INSERT_CHUNK = 100;

/**
 * An entry's columns, read as arrays (`raw()`) and made into objects in JS: better-sqlite3 builds
 * each row object key by key through V8's API, which cost ~3× the query itself on a listing of
 * 1,000 names (8–13 µs a row against 3–4 µs).
 */
const COLS = `id, location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, version, ${hexOf('hash')}, target, rdev`;
type RawEntry = [number, number, number | null, string, EntryType, number, number, number, number, string | null, string | null, string | null, number | null];

function entryOf(r: RawEntry): Entry {
  return {
    id: r[0],
    locationId: r[1],
    parentId: r[2],
    name: r[3],
    type: r[4],
    size: r[5],
    mtimeSec: r[6],
    mtimeNsec: r[7],
    mode: r[8],
    version: r[9],
    hash: r[10],
    target: r[11],
    rdev: r[12],
  };
}

function maybeEntry(r: unknown): Entry | undefined {
  return r === undefined ? undefined : entryOf(r as RawEntry);
}

function entriesOf(rows: unknown[]): Entry[] {
  return (rows as RawEntry[]).map(entryOf);
}

export function fieldsOf(e: EntryFields): EntryFields & { rdev: number | null } {
  return { type: e.type, size: e.size, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, mode: e.mode, version: e.version, hash: e.hash, target: e.target, rdev: e.rdev ?? null };
}

/**
 * The entry tree of every location, as parent/name rows. Every mutation appends to the
 * change log in the same statement group; callers wrap batches in `db.transaction`.
 * Mutations throw FsError (EEXIST, ENOENT) or SQLite errors for constraint violations.
 */
export class EntryStore {
  private readonly s: Record<string, Statement>;

  constructor(readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    const raw = (sql: string) => db.prepare(sql).raw();
    this.s = {
      byId: raw(`SELECT ${COLS} FROM entries WHERE id = ?`),
      root: raw(`SELECT ${COLS} FROM entries WHERE location_id = ? AND parent_id IS NULL`),
      child: raw(`SELECT ${COLS} FROM entries WHERE parent_id = ? AND name = ?`),
      children: raw(`SELECT ${COLS} FROM entries WHERE parent_id = ? ORDER BY name`),
      ofLocation: raw(`SELECT ${COLS} FROM entries WHERE location_id = ?`),
      byHash: raw(`SELECT ${COLS} FROM entries WHERE hash = ${binOf('?')} ORDER BY location_id, id`),
      childDirs: p(`SELECT id, name FROM entries WHERE parent_id = ? AND type = 'dir' ORDER BY name`),
      childCount: p('SELECT count(*) AS n FROM entries WHERE parent_id = ?'),
      // Positional: binding a 12-key object by name cost ~15 % of a first scan's insert.
      insert: p(`INSERT INTO entries (location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, version, hash, target, rdev)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ${binOf('?')}, ?, ?)`),
      update: p(`UPDATE entries SET type=@type, size=@size, mtime_sec=@mtimeSec, mtime_nsec=@mtimeNsec, mode=@mode,
                 version=@version, hash=${binOf('@hash')}, target=@target, rdev=@rdev WHERE id=@id`),
      // Type, size and hash unchanged: the location_stats trigger (UPDATE OF type, size, hash)
      // and the hash index are left alone (a chmod or utimens of each file of `rsync -a`).
      updateMeta: p('UPDATE entries SET mtime_sec = ?, mtime_nsec = ?, mode = ?, version = ?, target = ?, rdev = ? WHERE id = ?'),
      move: p('UPDATE entries SET parent_id = ?, name = ? WHERE id = ?'),
      remove: p('DELETE FROM entries WHERE id = ?'),
      // Shares live in meta as peer.share.<node> = JSON array of location names (index/peer-store.ts).
      shared: p(`SELECT 1 FROM locations WHERE id = ? AND name IN
                 (SELECT j.value FROM meta m, json_each(m.value) j WHERE m.key >= 'peer.share.' AND m.key < 'peer.share/')`).pluck(),
      log: p('INSERT INTO changes (location_id, op, path, to_path, entry, at) VALUES (?, ?, ?, ?, ?, ?)'),
    };
  }

  get(id: number): Entry | undefined {
    return maybeEntry(this.s.byId.get(id));
  }

  root(locationId: number): Entry | undefined {
    return maybeEntry(this.s.root.get(locationId));
  }

  child(parentId: number, name: string): Entry | undefined {
    return maybeEntry(this.s.child.get(parentId, name));
  }

  children(parentId: number): Entry[] {
    return entriesOf(this.s.children.all(parentId));
  }

  /** The sub-directories of a directory: id and name only. */
  childDirs(parentId: number): { id: number; name: string }[] {
    return this.s.childDirs.all(parentId) as { id: number; name: string }[];
  }

  childCount(parentId: number): number {
    return (this.s.childCount.get(parentId) as { n: number }).n;
  }

  ofLocation(locationId: number): Entry[] {
    return entriesOf(this.s.ofLocation.all(locationId));
  }

  /** Every non-root entry's id, location and name, streamed (one row in memory at a time). */
  *iterateNames(): IterableIterator<Pick<Entry, 'id' | 'locationId' | 'name'>> {
    // A second connection-level statement may run while this one iterates (better-sqlite3
    // allows reads during iteration), so callers can resolve paths as they go.
    yield* this.db.prepare('SELECT id, location_id AS locationId, name FROM entries WHERE parent_id IS NOT NULL').iterate() as IterableIterator<
      Pick<Entry, 'id' | 'locationId' | 'name'>
    >;
  }

  /**
   * Groups of files with the same content, the most space wasted first (size × extra copies),
   * streamed: SQLite groups and sorts on its own temporary store, one group is in memory at a
   * time. Empty files only with `includeEmpty`.
   */
  duplicateGroups(includeEmpty: boolean): IterableIterator<{ hash: string; size: number; n: number }> {
    return this.db
      .prepare(
        `SELECT ${hexOf('entries.hash')} AS hash, max(size) AS size, count(*) AS n FROM entries WHERE type = 'file' AND hash IS NOT NULL ${includeEmpty ? '' : 'AND size > 0'}
       GROUP BY entries.hash HAVING count(*) > 1 ORDER BY max(size) * (count(*) - 1) DESC`,
      )
      .iterate() as IterableIterator<{ hash: string; size: number; n: number }>;
  }

  byHash(hash: string): Entry[] {
    return entriesOf(this.s.byHash.all(hash));
  }

  /** The entry at a relative path, or undefined. Throws EINVAL for a bad path. */
  resolve(locationId: number, rel: string): Entry | undefined {
    let cur = this.root(locationId);
    for (const part of splitPath(rel)) {
      if (!cur) return undefined;
      if (cur.type !== 'dir') return undefined;
      cur = this.child(cur.id, part);
    }
    return cur;
  }

  /** Relative path of an entry within its location ('' for the root). */
  pathOf(id: number): string {
    const parts: string[] = [];
    let cur = this.get(id);
    while (cur && cur.parentId !== null) {
      parts.push(cur.name);
      cur = this.get(cur.parentId);
    }
    return parts.reverse().join('/');
  }

  private insertRow(locationId: number, parentId: number | null, name: string, f: EntryFields): number {
    return Number(this.s.insert.run(locationId, parentId, name, f.type, f.size, f.mtimeSec, f.mtimeNsec, f.mode, f.version, f.hash, f.target, f.rdev ?? null).lastInsertRowid);
  }

  /** Creates the root directory entry of a location. */
  createRoot(locationId: number, fields: EntryFields): Entry {
    const id = this.insertRow(locationId, null, '', fields);
    this.log(locationId, 'put', '', null, fields);
    return this.get(id)!;
  }

  /** Adds a child. Throws EEXIST when the name is taken. */
  insert(locationId: number, parentId: number, name: string, fields: EntryFields, path: string): number {
    let id: number;
    try {
      const f = fields;
      id = Number(this.s.insert.run(locationId, parentId, name, f.type, f.size, f.mtimeSec, f.mtimeNsec, f.mode, f.version, f.hash, f.target, f.rdev ?? null).lastInsertRowid);
    } catch (err) {
      // entries_child is unique: asking first would cost a lookup per insert (a first scan's millions).
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new FsError('EEXIST', `${path} already exists in the index`);
      throw err;
    }
    if (!isSpecial(fields.type)) this.log(locationId, 'put', path, null, fields);
    return id;
  }

  /**
   * Adds children of one directory with one statement per ~100 rows (a first scan's millions:
   * ~25 % less CPU than a statement per row). Returns their ids, in order. Throws EEXIST when
   * a name is taken, and then none of the chunk holding it is inserted (earlier chunks are).
   */
  insertMany(locationId: number, parentId: number, rows: readonly { name: string; fields: EntryFields; path: string }[]): number[] {
    const ids: number[] = [];
    for (let at = 0; at < rows.length; at += INSERT_CHUNK) {
      const chunk = rows.slice(at, at + INSERT_CHUNK);
      const args: unknown[] = [];
      for (const { name, fields: f } of chunk) args.push(locationId, parentId, name, f.type, f.size, f.mtimeSec, f.mtimeNsec, f.mode, f.version, f.hash, f.target, f.rdev ?? null);
      let last: number;
      try {
        last = Number(this.insertOf(chunk.length).run(args).lastInsertRowid);
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new FsError('EEXIST', `a name in ${chunk[0].path} already exists in the index`);
        throw err;
      }
      // A multi-row INSERT numbers its rows max(id)+1, +2, ... in order (no trigger adds entries).
      for (let i = 0; i < chunk.length; i++) ids.push(last - chunk.length + 1 + i);
      for (const r of chunk) if (!isSpecial(r.fields.type)) this.log(locationId, 'put', r.path, null, r.fields);
    }
    return ids;
  }

  /** The INSERT of `n` rows, prepared once per size (at most INSERT_CHUNK of them). */
  private insertOf(n: number): Statement {
    let st = this.multiInsert.get(n);
    if (!st) {
      const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ${binOf('?')}, ?, ?)`;
      st = this.db.prepare(
        `INSERT INTO entries (location_id, parent_id, name, type, size, mtime_sec, mtime_nsec, mode, version, hash, target, rdev) VALUES ${Array(n).fill(row).join(', ')}`,
      );
      this.multiInsert.set(n, st);
    }
    return st;
  }
  private readonly multiInsert = new Map<number, Statement>();

  /**
   * Sets an entry's fields. `fresh`: `entry` is the row as the caller's transaction just read
   * it, so when its type, size and hash stay, only the other columns are written.
   */
  update(entry: Entry, fields: EntryFields, path: string, fresh = false): void {
    const f = fieldsOf(fields);
    if (fresh && entry.type === f.type && entry.size === f.size && (entry.hash ?? null) === (f.hash ?? null))
      this.s.updateMeta.run(f.mtimeSec, f.mtimeNsec, f.mode, f.version, f.target, f.rdev, entry.id);
    else this.s.update.run({ id: entry.id, ...f });
    // A name that became a special file is gone for peers (see log()).
    if (!isSpecial(fields.type)) this.log(entry.locationId, 'put', path, null, fields);
    else if (!isSpecial(entry.type)) this.log(entry.locationId, 'delete', path, null, null);
  }

  /** Removes an entry and (by cascade) everything below it. */
  remove(entry: Entry, path: string): void {
    this.s.remove.run(entry.id);
    if (!isSpecial(entry.type)) this.log(entry.locationId, 'delete', path, null, null);
  }

  /** Moves/renames an entry, replacing an existing target entry. One row update for a whole subtree. */
  move(entry: Entry, newParentId: number, newName: string, fromPath: string, toPath: string): void {
    const existing = this.child(newParentId, newName);
    if (existing && existing.id !== entry.id) this.s.remove.run(existing.id);
    this.s.move.run(newParentId, newName, entry.id);
    if (!isSpecial(entry.type)) this.log(entry.locationId, 'move', fromPath, toPath, null);
    // A special file moved over a name peers know: that name is gone for them.
    else if (existing && !isSpecial(existing.type)) this.log(entry.locationId, 'delete', toPath, null, null);
  }

  /** Shared answers of the open batch transaction (index/share-epoch.ts), by location id. */
  private sharedMemo = new Map<number, boolean>();
  private memoEpoch: number | undefined;

  private isShared(locationId: number): boolean {
    const epoch = shareEpoch(this.db);
    if (epoch === undefined) return this.s.shared.get(locationId) !== undefined;
    if (epoch !== this.memoEpoch) {
      this.memoEpoch = epoch;
      this.sharedMemo.clear();
    }
    let shared = this.sharedMemo.get(locationId);
    if (shared === undefined) this.sharedMemo.set(locationId, (shared = this.s.shared.get(locationId) !== undefined));
    return shared;
  }

  /**
   * The change log exists for peers following a location, and a peer starts from a snapshot
   * (every entry, at the log's head) when it is first shared: changes of a location shared with
   * no peer are never read, so they are not written (half of a million-file index). Checked at
   * each write, inside the write's transaction: a share committed before it is seen, and a
   * snapshot taken after a share includes every write committed before it. Inside a scan's
   * batch the answer is asked once (index/share-epoch.ts): no other connection can commit then.
   * Special files (FIFOs, sockets, devices) are never logged: they mean something only on
   * this machine (a rendezvous, a device number), so peers never see them (docs/vfs.md).
   */
  private log(locationId: number, op: 'put' | 'delete' | 'move', path: string, toPath: string | null, fields: EntryFields | null): void {
    if (!this.isShared(locationId)) return;
    this.s.log.run(locationId, op, path, toPath, fields ? JSON.stringify(fieldsOf(fields)) : null, Date.now());
  }
}
