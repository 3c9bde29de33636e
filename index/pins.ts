import type { Db } from './db';

/** A pinned file or folder: its content is kept on this device (cache/pinned), whatever is added below it later. */
export interface Pin {
  id: number;
  locationId: number;
  /** Relative path in the location ('' for the whole location). */
  path: string;
  createdAt: number;
}

/** The pins of this node. Methods throw only SQLite errors. */
export class PinStore {
  constructor(private readonly db: Db) {}

  list(): Pin[] {
    return this.db.prepare('SELECT id, location_id AS locationId, path, created_at AS createdAt FROM pins ORDER BY location_id, path').all() as Pin[];
  }

  /** Adds a pin; true when it is new. */
  add(locationId: number, path: string): boolean {
    return this.db.prepare('INSERT INTO pins (location_id, path, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(locationId, path, Date.now()).changes > 0;
  }

  /** Changes whenever the pins or any entry change (the change log's head and the pin ids): the pinner skips a pass when it is the same. */
  signature(): string {
    const r = this.db.prepare("SELECT (SELECT coalesce(max(seq), 0) FROM changes) AS seq, (SELECT coalesce(group_concat(id), '') FROM pins) AS ids").get() as {
      seq: number;
      ids: string;
    };
    return `${r.seq}:${r.ids}`;
  }

  /** Removes a pin; true when there was one. */
  remove(locationId: number, path: string): boolean {
    return this.db.prepare('DELETE FROM pins WHERE location_id = ? AND path = ?').run(locationId, path).changes > 0;
  }
}
