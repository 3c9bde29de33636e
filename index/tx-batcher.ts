import { setRelaxedCommits, type Db } from './db';
import { closeShareEpoch, openShareEpoch } from './share-epoch';

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

  /**
   * `n` changes are about to be written: commits the transaction first when it holds `size`
   * already (so the changes never land outside one), opens one if none is.
   */
  tick(n = 1): void {
    if (this.open && this.n >= this.size) this.flush();
    if (!this.open) {
      if (this.relaxed && !this.db.inTransaction) setRelaxedCommits(this.db, true);
      this.db.exec('BEGIN IMMEDIATE');
      this.open = true;
      openShareEpoch(this.db);
    }
    this.n += n;
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
      closeShareEpoch(this.db);
      this.open = false;
      this.n = 0;
      if (this.relaxed && !this.db.inTransaction) setRelaxedCommits(this.db, false);
    }
  }
}
