import type { Db } from './db';
import { binOf, hexOf } from './hash-sql';

/** The outcome of the last check of one entry's content (vdfs fsck). */
export interface Verification {
  entryId: number;
  /** The content that was checked: a verification of an older content does not count. */
  hash: string;
  at: number;
  ok: boolean;
}

/** Last-verified times per entry. Methods throw only SQLite errors. */
export class VerifiedStore {
  constructor(private readonly db: Db) {}

  record(entryId: number, hash: string, ok: boolean, at = Date.now()): void {
    this.db
      .prepare(
        `INSERT INTO verified (entry_id, hash, at, ok) VALUES (?, ${binOf('?')}, ?, ?) ON CONFLICT(entry_id) DO UPDATE SET hash = excluded.hash, at = excluded.at, ok = excluded.ok`,
      )
      .run(entryId, hash, at, ok ? 1 : 0);
  }

  /** The last check of the entry's current content `hash`, if any. */
  get(entryId: number, hash: string): Verification | undefined {
    const r = this.db.prepare(`SELECT entry_id AS entryId, ${hexOf('hash')} AS hash, at, ok FROM verified WHERE entry_id = ? AND hash = ${binOf('?')}`).get(entryId, hash) as
      { entryId: number; hash: string; at: number; ok: number } | undefined;
    return r ? { ...r, ok: r.ok !== 0 } : undefined;
  }
}
