import type { Db } from './db';

/**
 * Groups index writes into transactions of `size` changes (each commit is fsynced): one
 * connection, one open transaction at a time, shared by every stage of a scan.
 * Throws what SQLite throws (SQLITE_BUSY past the busy timeout, SQLITE_FULL).
 */
export class TxBatcher {
  private open = false;
  private n = 0;
  constructor(
    private readonly db: Db,
    private readonly size = 5000,
  ) {}

  /** One change is about to be written: opens a transaction if none is, commits every `size`. */
  tick(): void {
    if (!this.open) {
      this.db.exec('BEGIN IMMEDIATE');
      this.open = true;
    }
    if (++this.n >= this.size) this.flush();
  }

  flush(): void {
    if (this.open) {
      this.db.exec('COMMIT');
      this.open = false;
      this.n = 0;
    }
  }

  abort(): void {
    if (this.open) {
      this.db.exec('ROLLBACK');
      this.open = false;
      this.n = 0;
    }
  }
}
