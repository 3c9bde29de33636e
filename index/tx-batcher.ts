import { setRelaxedCommits, type Db } from './db';
import { commitGroup } from './commit-group';
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
  /** A commit at the end of a turn failed: thrown by the next tick or flush. */
  private failed: unknown;
  constructor(
    private readonly db: Db,
    private readonly size = 5000,
    private readonly relaxed = false,
    /**
     * The connection is shared with live writers (the daemon's rescans): commit at the end of
     * every synchronous turn, so no writer's change ever joins (and waits for, or is rolled back
     * with) a transaction held open across the scan's awaits.
     */
    private readonly perTurn = false,
  ) {}

  /**
   * `n` changes are about to be written: commits the transaction first when it holds `size`
   * already (so the changes never land outside one), opens one if none is.
   */
  tick(n = 1): void {
    if (this.failed !== undefined) throw this.failed;
    if (this.open && this.n >= this.size) this.flush();
    if (!this.open) {
      commitGroup(this.db); // the local writer's grouped rows get their own commit (index/commit-group.ts)
      if (this.relaxed && !this.db.inTransaction) setRelaxedCommits(this.db, true);
      this.db.exec('BEGIN IMMEDIATE');
      this.open = true;
      openShareEpoch(this.db);
      if (this.perTurn) queueMicrotask(() => this.endTurn());
    }
    this.n += n;
  }

  private endTurn(): void {
    try {
      this.flush();
    } catch (err) {
      this.failed = err;
      try {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
      } catch {
        /* the connection reports the first error again at the next tick */
      }
    }
  }

  flush(): void {
    if (this.failed !== undefined) throw this.failed;
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
