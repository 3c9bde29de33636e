import type { Db } from './db';
import { hexOf } from './hash-sql';

/** A file somewhere below a directory entry (or the entry itself when it is a file). */
export interface SubtreeFile {
  id: number;
  locationId: number;
  hash: string | null;
  size: number;
}

/**
 * Every file entry at or below `entryId`, in one recursive query (no per-directory round trips).
 * Never throws for an unknown id (the answer is empty).
 */
export function filesUnder(db: Db, entryId: number): SubtreeFile[] {
  return db
    .prepare(
      `WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent_id = sub.id)
       SELECT e.id, e.location_id AS locationId, ${hexOf('e.hash')} AS hash, e.size FROM entries e JOIN sub ON e.id = sub.id WHERE e.type = 'file'`,
    )
    .all(entryId) as SubtreeFile[];
}

/** A non-empty file and the distinct locations (ids, ascending) holding its content. */
export interface FileCopies {
  id: number;
  locationId: number;
  size: number;
  /** Content not hashed yet is known only where it was listed: then just `locationId`. */
  holders: number[];
}

/**
 * Streams every non-empty file (at or below `scopeEntryId` when given) with the locations
 * holding its content, one row at a time: memory stays flat however big the index is.
 */
export function* fileCopies(db: Db, scopeEntryId?: number): IterableIterator<FileCopies> {
  const holders = `(SELECT group_concat(DISTINCT x.location_id) FROM entries x WHERE x.hash = f.hash AND x.type = 'file')`;
  const rows =
    scopeEntryId === undefined
      ? db.prepare(`SELECT f.id, f.location_id AS locationId, f.size, ${holders} AS locs FROM entries f WHERE f.type = 'file' AND f.size > 0`).iterate()
      : db
          .prepare(
            `WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL SELECT e.id FROM entries e JOIN sub ON e.parent_id = sub.id)
        SELECT f.id, f.location_id AS locationId, f.size, ${holders} AS locs FROM entries f JOIN sub ON f.id = sub.id WHERE f.type = 'file' AND f.size > 0`,
          )
          .iterate(scopeEntryId);
  for (const r of rows as IterableIterator<{ id: number; locationId: number; size: number; locs: string | null }>) {
    const holders = r.locs
      ? r.locs
          .split(',')
          .map(Number)
          .sort((a, b) => a - b)
      : [r.locationId];
    yield { id: r.id, locationId: r.locationId, size: r.size, holders };
  }
}
