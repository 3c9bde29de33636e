import type { Db } from './db';

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
       SELECT e.id, e.location_id AS locationId, e.hash, e.size FROM entries e JOIN sub ON e.id = sub.id WHERE e.type = 'file'`,
    )
    .all(entryId) as SubtreeFile[];
}

/** Every file entry of every location. */
export function allFiles(db: Db): SubtreeFile[] {
  return db.prepare(`SELECT id, location_id AS locationId, hash, size FROM entries WHERE type = 'file'`).all() as SubtreeFile[];
}

/** For each hashed content: the distinct locations holding a file with it. */
export function locationsByHash(db: Db): Map<string, number[]> {
  const rows = db
    .prepare(`SELECT hash, group_concat(DISTINCT location_id) AS locs FROM entries WHERE type = 'file' AND hash IS NOT NULL GROUP BY hash`)
    .all() as { hash: string; locs: string }[];
  return new Map(rows.map((r) => [r.hash, r.locs.split(',').map(Number)]));
}
