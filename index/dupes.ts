import type { Db } from './db';

/** Content held by more than one file entry: its hash, size and how many entries hold it. */
export interface DuplicateGroup {
  hash: string;
  size: number;
  n: number;
}

/**
 * Every hash held by two or more file entries, biggest waste (size x extra copies) first; empty
 * files only with `includeEmpty`. Throws SqliteError when the index cannot be read.
 */
export function duplicateGroups(db: Db, includeEmpty: boolean): DuplicateGroup[] {
  return db
    .prepare(
      `SELECT hash, max(size) AS size, count(*) AS n FROM entries WHERE type = 'file' AND hash IS NOT NULL ${includeEmpty ? '' : 'AND size > 0'}
       GROUP BY hash HAVING count(*) > 1 ORDER BY max(size) * (count(*) - 1) DESC`,
    )
    .all() as DuplicateGroup[];
}
