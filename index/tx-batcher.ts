import { setRelaxedCommits, type Db } from './db';

/**
 * Groups index writes into transactions of `size` changes (each commit is fsynced, unless
 * `relaxed`: then commits use synchronous=NORMAL, they survive a killed process, and the
 * caller runs syncIndex() at the end for power loss): one connection, one open transaction
 * at a time, shared by every stage of a scan.
 * Throws what SQLite throws (SQLITE_BUSY past the busy timeout, SQLITE_FULL).
 */
export class TxBatcher {
  private open = false;
  private n = 0;
  constructor(
    private readonly db: Db,
    private readonly size = 5000,
    private readonly relaxed = false,
  ) {}

  /** One change is about to be written: opens a transaction if none is, commits every `size`. */
  tick(): void {
    if (!this.open) {
      if (this.relaxed) setRelaxedCommits(this.db, true);
      this.db.exec('BEGIN IMMEDIATE');
      this.open = true;
    }
    if (++this.n >= this.size) this.flush();
  }

  flush(): void {
    if (this.open) this.end('COMMIT');
  }

  abort(): void {
    if (this.open) this.end('ROLLBACK');
  }

  private end(how: 'COMMIT' | 'ROLLBACK'): void {
    try {
      this.db.exec(how);
    } finally {
      this.open = false;
      this.n = 0;
      if (this.relaxed && !this.db.inTransaction) setRelaxedCommits(this.db, false);
    }
  }
}
