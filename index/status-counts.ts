import type { Db } from './db';

/** Per-location counters kept by triggers (index/migrations.ts): one row per location, whatever the index size. */
export interface LocationCounts {
  id: number;
  entries: number;
  files: number;
  dirs: number;
  bytes: number;
  unhashed: number;
}

/**
 * The counts `vdfs status` and the status page show. Every query is O(locations) or a single
 * index lookup. Throws what better-sqlite3 throws (SqliteError) when the index cannot be read.
 */
export class StatusCounts {
  constructor(private readonly db: Db) {}

  /** The trigger-kept counters of every location, by location id. */
  byLocation(): Map<number, LocationCounts> {
    const rows = this.db.prepare('SELECT location_id AS id, entries, files, dirs, bytes, unhashed FROM location_stats').all() as LocationCounts[];
    return new Map(rows.map((r) => [r.id, r]));
  }

  /** The newest sequence number of this node's change log (0 when empty). */
  changeSeq(): number {
    return (this.db.prepare('SELECT coalesce(max(seq), 0) AS n FROM changes').get() as { n: number }).n;
  }

  /** Staged uploads waiting and given up on. */
  uploads(): { pending: number; failed: number } {
    return this.db.prepare("SELECT count(*) FILTER (WHERE state = 'pending') AS pending, count(*) FILTER (WHERE state = 'failed') AS failed FROM uploads").get() as {
      pending: number;
      failed: number;
    };
  }
}
