import { blockPool } from '../../cache/block-pool';
import { deferred } from './window-stream';

/** A run streams at most this many blocks beyond the ones its reader has claimed (then it pauses). */
const AHEAD = 1;

type Settled = Buffer | Promise<Buffer>;

/**
 * The blocks `first`..`end` of ONE ranged stream, handed to one reader in order as it claims
 * them (`claim`). The stream may be far longer than what the reader holds: it runs at most
 * AHEAD blocks beyond the last claim and is then paused (`gate`), the rest waiting in the
 * server's socket, so a 64 MiB run holds no more memory than a window, and a sequential reader
 * pays one request per run instead of one per window (docs/read-pipeline.md). Each block is
 * handed over with the stream's reference to its pooled buffer; blocks never claimed are given
 * back when the run is cancelled.
 */
export class BlockRun {
  private next: number;
  private limit: number;
  private readonly claimed = new Map<number, { resolve: (v: Settled) => void }>();
  private readonly arrived = new Map<number, Settled>();
  private wake?: (go: boolean) => void;
  private cancelled = false;

  constructor(
    readonly first: number,
    readonly end: number,
  ) {
    this.next = first;
    this.limit = end;
  }

  /** True when block `i` is the next one this run hands out. */
  canClaim(i: number): boolean {
    return !this.cancelled && i === this.next && i <= this.limit;
  }

  /** Block `i` (call only when canClaim(i)): settles when it arrives, rejects as `block` would. */
  claim(i: number): Promise<Buffer> {
    this.next = i + 1;
    const a = this.arrived.get(i);
    let p: Promise<Buffer>;
    if (a !== undefined) {
      this.arrived.delete(i);
      p = Promise.resolve(a);
    } else {
      const d = deferred<Buffer>();
      this.claimed.set(i, d);
      p = d.promise;
    }
    this.resume(true);
    return p;
  }

  /** The stream's block `i`: its bytes, or a promise of them (a refetch after a failed check). */
  settle(i: number, v: Settled): void {
    const d = this.claimed.get(i);
    if (d) {
      this.claimed.delete(i);
      d.resolve(v);
    } else if (this.cancelled) {
      giveBack(v);
    } else {
      if (!Buffer.isBuffer(v)) v.catch(() => undefined); // a failed refetch nobody claimed is not an unhandled rejection
      this.arrived.set(i, v);
    }
  }

  /** For streamWindow, after each block: true to go on, false to stop, a promise to pause until it says which. */
  gate(): boolean | Promise<boolean> {
    if (this.cancelled) return this.claimed.size > 0; // blocks already claimed are still delivered
    if (this.arrived.size < AHEAD) return true;
    return new Promise<boolean>((r) => (this.wake = r));
  }

  /** The stream is over; blocks from `next` on were not delivered. Claims already made for them are answered by `fallback`. */
  finish(next: number, fallback: (i: number) => Promise<Buffer>): void {
    this.limit = Math.min(this.limit, next - 1);
    for (const [i, d] of this.claimed) d.resolve(fallback(i));
    this.claimed.clear();
  }

  /**
   * No more claims: the stream stops after the blocks already claimed (as a window would), and
   * what arrived unclaimed is given back. Never throws.
   */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    for (const v of this.arrived.values()) giveBack(v);
    this.arrived.clear();
    this.resume(this.claimed.size > 0);
  }

  private resume(go: boolean): void {
    const w = this.wake;
    this.wake = undefined;
    w?.(go);
  }
}

/** Drops the stream's reference to a block nobody claimed. */
function giveBack(v: Settled): void {
  if (Buffer.isBuffer(v)) blockPool.unref(v);
  else
    v.then(
      (b) => blockPool.unref(b),
      () => undefined,
    );
}
