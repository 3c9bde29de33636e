import type { Statement } from 'better-sqlite3';
import { FsError } from '../core/fs-error';
import type { Db } from './db';
import { forgetLocationGrants } from './share-records';

export type LocationKind = 'local' | 's3' | 'gdrive' | 'peer';

export interface LocationOptions {
  /** Extra gitignore-style rules, on top of the default OS-junk rules. */
  ignore?: string[];
  /**
   * Local locations only: stage writes and copy them into place after close (write-back, as
   * cloud locations always do) instead of writing through. For slow or flaky disks (USB, NAS).
   */
  writeBack?: boolean;
}

export interface Location {
  id: number;
  name: string;
  uri: string;
  kind: LocationKind;
  ownerNode: string;
  readonly: boolean;
  online: boolean;
  options: LocationOptions;
  lastScan: number | null;
  /** When the location was last seen reachable (ms; set as its online state changes). Null: never recorded. */
  lastSeen: number | null;
}

interface Row {
  id: number;
  name: string;
  uri: string;
  kind: LocationKind;
  owner_node: string;
  readonly: number;
  online: number;
  options: string;
  last_scan: number | null;
  last_seen?: number | null;
}

const NAME_RE = /^[A-Za-z0-9._-]+$/;

function fromRow(r: Row): Location {
  return {
    id: r.id,
    name: r.name,
    uri: r.uri,
    kind: r.kind,
    ownerNode: r.owner_node,
    readonly: r.readonly !== 0,
    online: r.online !== 0,
    options: JSON.parse(r.options) as LocationOptions,
    lastScan: r.last_scan,
    lastSeen: r.last_seen ?? null,
  };
}

/** Throws EINVAL for a name that is not `[A-Za-z0-9._-]+` (or is '.', '..', '.vdfs'). */
export function checkLocationName(name: string): void {
  if (!NAME_RE.test(name) || name === '.' || name === '..' || name === '.vdfs')
    throw new FsError('EINVAL', `location name ${JSON.stringify(name)} is invalid: use letters, digits, '.', '_' and '-' (not '.vdfs')`);
}

/** Locations of this node's index. Throws FsError EEXIST / ENOENT / EINVAL. */
export class LocationStore {
  // find/byId run on every path resolution: prepared once, not per call.
  private readonly byName: Statement;
  private readonly byIdStmt: Statement;

  constructor(private readonly db: Db) {
    this.byName = db.prepare('SELECT * FROM locations WHERE name = ?');
    this.byIdStmt = db.prepare('SELECT * FROM locations WHERE id = ?');
  }

  list(): Location[] {
    return (this.db.prepare('SELECT * FROM locations ORDER BY name').all() as Row[]).map(fromRow);
  }

  find(name: string): Location | undefined {
    const r = this.byName.get(name) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  byId(id: number): Location | undefined {
    const r = this.byIdStmt.get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  get(name: string): Location {
    const loc = this.find(name);
    if (!loc) throw new FsError('ENOENT', `no location named ${JSON.stringify(name)} (see: vdfs location ls)`);
    return loc;
  }

  add(l: { name: string; uri: string; kind: LocationKind; ownerNode: string; readonly: boolean; options: LocationOptions }): Location {
    checkLocationName(l.name);
    if (this.find(l.name)) throw new FsError('EEXIST', `a location named ${JSON.stringify(l.name)} already exists`);
    const dup = this.db.prepare('SELECT name FROM locations WHERE uri = ?').get(l.uri) as { name: string } | undefined;
    if (dup) throw new FsError('EEXIST', `${l.uri} is already the location ${JSON.stringify(dup.name)}`);
    const info = this.db
      .prepare('INSERT INTO locations (name, uri, kind, owner_node, readonly, options, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(l.name, l.uri, l.kind, l.ownerNode, l.readonly ? 1 : 0, JSON.stringify(l.options), Date.now());
    return this.byId(Number(info.lastInsertRowid))!;
  }

  /** Forgets a location, its entries, and every share and pending invitation naming it. Throws ENOENT. */
  remove(name: string): void {
    const loc = this.get(name);
    this.db
      .transaction(() => {
        // Delete children before the root: one cascade per row is slow for huge trees.
        this.db.prepare('DELETE FROM entries WHERE location_id = ? AND parent_id IS NOT NULL').run(loc.id);
        this.db.prepare('DELETE FROM entries WHERE location_id = ?').run(loc.id);
        this.db.prepare('DELETE FROM locations WHERE id = ?').run(loc.id);
        forgetLocationGrants(this.db, loc.name);
      })
      .immediate();
  }

  /** Records the online state; either way the location was seen (or last seen) now. */
  setOnline(id: number, online: boolean): void {
    this.db.prepare('UPDATE locations SET online = ?, last_seen = ? WHERE id = ?').run(online ? 1 : 0, Date.now(), id);
  }

  /** Makes a location read-only (every change refused with EROFS) or writable again. */
  setReadonly(id: number, readonly: boolean): void {
    this.db.prepare('UPDATE locations SET readonly = ? WHERE id = ?').run(readonly ? 1 : 0, id);
  }

  setLastScan(id: number, at: number): void {
    this.db.prepare('UPDATE locations SET last_scan = ? WHERE id = ?').run(at, id);
  }
}
