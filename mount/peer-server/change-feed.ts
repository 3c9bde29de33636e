import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { noteSwallowed } from '../../core/swallowed';

/** How often the change log's head is read while someone waits. */
const TICK_MS = 100;

/**
 * Long-polls of `/v1/changes?wait=N`: they wait for the change log to move (written by this
 * daemon or by a CLI scan in another process, hence polling the head). Never throws.
 */
export class ChangeFeed {
  private readonly waiters = new Set<() => void>();
  private lastHead: number;
  private readonly ticker: NodeJS.Timeout;

  constructor(
    private readonly headSeq: () => number,
    private readonly log: Logger,
  ) {
    this.lastHead = headSeq();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  private tick(): void {
    if (this.waiters.size === 0) return;
    let head: number;
    try {
      head = this.headSeq();
    } catch (err) {
      // A busy index: the waiters wait one more tick (at worst until their own timeout).
      noteSwallowed(this.log, 'peer server: reading the change log head', err, {}, 'debug');
      return;
    }
    if (head !== this.lastHead) {
      this.lastHead = head;
      for (const w of [...this.waiters]) w();
    }
  }

  /** Resolves when the head passes `since`, after `ms`, or when the request goes away. */
  wait(req: IncomingMessage, since: number, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.headSeq() > since) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        req.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      req.once('close', done);
    });
  }

  /** Stops the ticker and lets every waiter go. */
  close(): void {
    clearInterval(this.ticker);
    for (const w of [...this.waiters]) w();
  }
}
