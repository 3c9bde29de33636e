import { blockPool } from '../../cache/block-pool';
import type { BlockRun } from './block-run';

/** A block held for a handle: its promise, and the block once it has arrived (to release a pooled one). */
interface Held {
  p: Promise<Buffer>;
  buf?: Buffer;
  /** Kept behind the reader (BEHIND): not charged to readAheadBudget any more. */
  behind?: boolean;
}

/** Read-ahead windows ramp 1, 2, 4, 8 blocks while reads stay sequential. */
const MAX_WINDOW_BLOCKS = 8;
/**
 * Once reads are sequential, one request streams this many blocks (a run, paced by what the
 * reader holds: BlockRun), instead of one request per window: each request costs a first byte
 * and the server's per-request work (docs/read-pipeline.md).
 */
const RUN_BLOCKS = 64;
/**
 * The window from which a request is a run: the second sequential read. The windows still ramp
 * (what the reader holds ahead), but from one request: a request per step of the ramp (2, 4, 8
 * blocks) cost three first bytes, 20–100 ms each on this loaded machine, at the start of every file.
 */
const RUN_FROM_WINDOW = 2;
/**
 * The request of the next run is sent when the reader's read-ahead gets this close to the end of
 * the current one: a new request's first byte took 50–200 ms on this loaded machine, longer than
 * a window of 8 blocks lasts, so the reader stalled at every run's end. The next run delivers
 * one block and pauses (BlockRun) until the reader claims from it.
 */
const NEXT_RUN_LEAD = 32;
/** A read this small at a place the reader was not expected is served by a ranged read of just its bytes, when allowed. */
export const SMALL_READ = 128 * 1024;
/**
 * Blocks kept just behind the reader: the kernel sends the READs of one stream out of order now
 * and then (two FUSE reader threads: 80 MiB, then 79). Block 79, dropped when 80 was read while
 * it was still on its way in the stream, was fetched again by a request of its own (30–65 ms).
 */
const BEHIND = 2;
/** Blocks held for this handle (streamed ahead, not yet read past): at most two windows, the reader's own and BEHIND. */
const MAX_PENDING = 2 * MAX_WINDOW_BLOCKS + 2 + BEHIND;

/**
 * One budget for the blocks every handle holds ahead of its reader (streamed or loaded, not
 * yet read past), so the daemon's streaming memory is bounded however many files stream at
 * once: a handle whose read-ahead would go over it reads ahead less (down to the blocks its
 * reader asks for now, which are always allowed). `limit` in bytes; `used` for tests and stats.
 */
export const readAheadBudget = { limit: 16 * 1024 * 1024, used: 0 };

/**
 * Reads fixed-size blocks of one piece of content and serves byte ranges from them. See
 * docs/vfs.md "Read pipeline".
 *
 * - A small read at an unexpected offset (the first read of a handle, a seek) is served by
 *   `direct`, a ranged read of just those bytes, when the subclass allows it (version-checked
 *   sources) and the blocks are not cached: a 4 KiB random read costs a 4 KiB request.
 * - Sequential reads start read-ahead windows of 1, 2, 4, then 8 blocks (mountpoint-s3's
 *   ramp). Each window is one streamed request (`streamRun`), cut into blocks handed to
 *   waiting readers as each completes; the next window starts when less than a whole window
 *   is read ahead, so one is always in flight while the reader consumes the other. From the
 *   second sequential read a request covers RUN_BLOCKS blocks, and the following windows take
 *   their blocks from it as the reader gets to them. A first read of the head larger than
 *   SMALL_READ starts the ramp at once. Subclasses without streaming fetch the window's blocks
 *   one by one (`block`).
 * One reader per open handle.
 */
export abstract class BlockReader {
  private nextOffset = -1;
  private window = 0;
  private streamedTo = -1;
  /** The stream the next windows take their blocks from, while it lasts. */
  private run?: BlockRun;
  /** The run after `run`, opened before the reader gets there (NEXT_RUN_LEAD). */
  private nextRun?: BlockRun;
  /** Blocks read ahead; a streamed block (pooled) is held with one reference, given back when dropped. */
  private readonly pending = new Map<number, Held>();
  /** Bytes of `pending` charged to readAheadBudget. */
  private charged = 0;
  /**
   * A front end reads this content's verified block files itself and verifies the cached blocks
   * ahead of its reader (KernelVfs.nativeBlocks): loading them here too would read and hash each twice.
   */
  cachedAheadElsewhere = false;

  constructor(
    readonly size: number,
    readonly blockSize: number,
  ) {}

  /** Block `i`, whole (the last one may be short), through the cache; a pooled one with a reference the reader gives back. Throws FsError. */
  protected abstract block(i: number): Promise<Buffer>;

  /**
   * Blocks `first`..`end` fetched as one stream, handed out in order as they are claimed
   * (BlockRun), each verified or version-checked and handed to the cache as it arrives.
   * Undefined when this content cannot be streamed now (the caller then uses `block`). Claims
   * reject with what `block` throws.
   */
  protected streamRun(_first: number, _end: number): BlockRun | undefined {
    return undefined;
  }

  /** Bytes [offset, offset+length) read directly from a version-checked source, uncached; undefined when not allowed. */
  protected direct(_offset: number, _length: number): Promise<Buffer> | undefined {
    return undefined;
  }

  /** Whether a failed `direct` read is worth trying again through `block` (another replica may answer). */
  protected retryAfterDirect(_err: unknown): boolean {
    return true;
  }

  /** True when block `i` is in the cache now (no fetch needed). */
  protected cached(_i: number): boolean {
    return false;
  }

  /** Up to `length` bytes from `offset`, short only at the end. Throws what `block` throws. */
  async read(offset: number, length: number): Promise<Buffer> {
    const { parts, blocks } = await this.pieces(offset, length);
    // a pooled block is reused once let go: the caller gets bytes of its own
    const out = parts.length === 1 && !blockPool.pooled(parts[0]) ? parts[0] : Buffer.concat(parts);
    for (const b of blocks) blockPool.unref(b);
    return out;
  }

  /**
   * Reads into `buf` (up to its length) from `offset`; returns the bytes read, short only at
   * the end. A read spanning blocks is copied from each block straight into `buf`, with no
   * intermediate buffer (a WebDAV GET reads 4 MiB at a time). Throws what `block` throws.
   */
  async readInto(offset: number, buf: Buffer): Promise<number> {
    let at = 0;
    const { parts, blocks } = await this.pieces(offset, buf.length);
    for (const p of parts) at += p.copy(buf, at);
    for (const b of blocks) blockPool.unref(b);
    return at;
  }

  /**
   * The bytes [offset, offset+length) as slices (`parts`) of the blocks that hold them (shared:
   * read-only), with a reference taken on each block: the caller copies the parts out, then
   * gives every one of `blocks` back (blockPool.unref).
   */
  private async pieces(offset: number, length: number): Promise<{ parts: Buffer[]; blocks: Buffer[] }> {
    const end = Math.min(offset + length, this.size);
    if (offset >= end) return { parts: [], blocks: [] };
    const bs = this.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    // The kernel sends read-ahead reads of one stream out of order now and then (two FUSE reader
    // threads: 45 MiB, 44, 46): a read near the last one while a window streams does not break
    // the pattern, nor move the expected offset back (the ramp used to restart at 1 block).
    const near = this.window > 0 && Math.abs(offset - this.nextOffset) <= 4 * bs;
    // A front end that reads verified block files itself (cachedAheadElsewhere) answered the READs
    // of the blocks between natively: when they are all cached, this READ goes on with the stream
    // (it used to look like a seek, which cancelled the run and fetched the next blocks singly).
    const skipped = !near && this.cachedAheadElsewhere && this.window > 0 && offset > this.nextOffset && this.allCached(Math.floor(this.nextOffset / bs), first - 1);
    // A READ ahead of the expected one (2 MiB arriving before 1 MiB): the blocks it skipped are
    // read next, so they are planned with it (block 1 used to be fetched alone, 130–300 ms).
    const from = near ? Math.min(first, Math.floor(this.nextOffset / bs)) : first;
    const sequential = offset === this.nextOffset || near || skipped;
    this.nextOffset = near ? Math.max(this.nextOffset, end) : end;
    if (!sequential) {
      this.window = 0;
      this.streamedTo = -1;
      this.stopRun();
      // A read covering a whole block (a small file read whole) takes the block path: the same
      // request, and the block is then verified and cached.
      const wholeBlock = offset === first * bs && (end === (first + 1) * bs || end === this.size);
      const d = end - offset <= SMALL_READ && !wholeBlock && !this.haveAny(first, last) ? this.direct(offset, end - offset) : undefined;
      if (d) {
        try {
          const b = await d;
          return { parts: [b], blocks: [] };
        } catch (err) {
          // the block path tries every replica, and says why when none works
          if (!this.retryAfterDirect(err)) throw err;
        }
      }
    }
    // A first read of the head larger than a small read (dd bs=1M, the kernel's read-ahead) is
    // the start of a stream: its window starts now, not one read later.
    if (sequential || (offset === 0 && end > SMALL_READ)) this.planAhead(from, last);
    const blocks = await Promise.all(Array.from({ length: last - first + 1 }, (_, k) => this.blockOf(first + k)));
    this.prune(first);
    return { parts: blocks.map((b, k) => b.subarray(k === 0 ? offset - first * bs : 0, Math.min(b.length, end - (first + k) * bs))), blocks };
  }

  /**
   * Block `i` with a reference of the caller's own: taken at once when the held block has
   * arrived, else as it arrives (before any `drop` gives the handle's reference back: promise
   * reactions run in the order they were added).
   */
  private blockOf(i: number): Promise<Buffer> {
    const h = this.pending.get(i);
    if (!h) return this.block(i);
    if (h.buf) {
      blockPool.ref(h.buf);
      return Promise.resolve(h.buf);
    }
    // a block that failed in a window is fetched again the ordinary way (every replica)
    return h.p.then(
      (b) => {
        blockPool.ref(b);
        return b;
      },
      () => {
        this.drop(i);
        return this.block(i);
      },
    );
  }

  /** Every block `a`..`b` is held or cached; false for a gap longer than two windows (a seek). */
  private allCached(a: number, b: number): boolean {
    return b - a + 1 <= 2 * MAX_PENDING && this.heldCount(a, b) === b - a + 1;
  }

  private haveAny(first: number, last: number): boolean {
    return this.heldCount(first, last) > 0;
  }

  /** How many of blocks `a`..`b` are held (pending) or cached. */
  private heldCount(a: number, b: number): number {
    let n = 0;
    for (let i = a; i <= b; i++) if (this.pending.has(i) || this.cached(i)) n++;
    return n;
  }

  /**
   * Starts the next window when the reader is within half a window of the end of what is
   * read ahead: runs of blocks not cached are streamed (one request per run), cached blocks
   * are loaded from the cache ahead of the reader (unless cachedAheadElsewhere).
   */
  private planAhead(first: number, last: number): void {
    this.window = Math.min(Math.max(1, this.window * 2), MAX_WINDOW_BLOCKS);
    const blocks = Math.ceil(this.size / this.blockSize);
    // A new request takes a while to its first byte (tens of ms on a loaded server): keep at
    // least one whole window in flight beyond the blocks being read, so the reader never waits
    // for one to start.
    if (this.streamedTo >= last && this.streamedTo - last >= this.window) return;
    let from = Math.max(first, this.streamedTo + 1);
    while (from < blocks && this.pending.has(from)) from++;
    // Blocks beyond the reader's own only while the shared budget has room for them.
    const room = Math.max(0, Math.floor((readAheadBudget.limit - readAheadBudget.used) / this.blockSize));
    const want = Math.min(Math.max(last, from + Math.min(this.window, room) - 1), blocks - 1);
    if (want < from) return;
    for (let i = from; i <= want;) {
      if (this.pending.has(i)) {
        i++;
      } else if (this.run?.canClaim(i)) {
        this.hold(i, this.run.claim(i));
        i++;
      } else if (this.nextRun?.canClaim(i)) {
        this.run?.cancel();
        this.run = this.nextRun;
        this.nextRun = undefined;
        this.hold(i, this.run.claim(i));
        i++;
      } else if (this.cached(i)) {
        if (!this.cachedAheadElsewhere) this.hold(i, this.block(i));
        i++;
      } else {
        let to = i;
        while (to < want && !this.pending.has(to + 1) && !this.cached(to + 1)) to++;
        // Once sequential, one request for a whole run; the windows after it claim from it.
        const end = this.window >= RUN_FROM_WINDOW ? Math.min(blocks - 1, Math.max(to, i + RUN_BLOCKS - 1)) : to;
        this.stopRun(); // a run that cannot give block i is done with (it still delivers what it was asked for)
        const run = this.streamRun(i, end);
        if (run && end > to) this.run = run;
        for (let k = i; k <= to; k++) this.hold(k, run ? run.claim(k) : this.block(k));
        i = to + 1;
      }
    }
    this.streamedTo = Math.max(this.streamedTo, want);
    this.openNextRun(want, blocks);
  }

  /** Sends the request of the run after this one once the read-ahead (`want`) is NEXT_RUN_LEAD blocks from its end. */
  private openNextRun(want: number, blocks: number): void {
    const run = this.run;
    if (!run || this.nextRun || run.end >= blocks - 1 || run.end - want > NEXT_RUN_LEAD) return;
    const first = run.end + 1;
    if (this.cached(first)) return; // the cache has it: the windows will load it from there
    this.nextRun = this.streamRun(first, Math.min(blocks - 1, first + RUN_BLOCKS - 1));
  }

  private hold(i: number, p: Promise<Buffer>): void {
    const h: Held = { p };
    // a failed read-ahead is retried by the real read
    p.then(
      (b) => (h.buf = b),
      () => undefined,
    );
    const old = this.pending.get(i);
    if (old) release(old);
    if (!old || old.behind) this.charge(this.blockSize);
    this.pending.set(i, h);
  }

  private drop(i: number): void {
    const h = this.pending.get(i);
    if (!h) return;
    this.pending.delete(i);
    if (!h.behind) this.charge(-this.blockSize);
    release(h);
  }

  private charge(n: number): void {
    this.charged += n;
    readAheadBudget.used += n;
  }

  /**
   * Forgets blocks the reader has moved past but the last BEHIND (kept for a late READ, and no
   * longer counted as read-ahead), and the oldest when too many are held.
   */
  private prune(first: number): void {
    for (const [i, h] of this.pending) {
      if (i < first - BEHIND) this.drop(i);
      else if (i < first && !h.behind) {
        h.behind = true;
        this.charge(-this.blockSize);
      }
    }
    while (this.pending.size > MAX_PENDING) this.drop(Math.min(...this.pending.keys()));
  }

  /** Stops the run's stream: the reader left the pattern (or the handle closed). */
  private stopRun(): void {
    this.run?.cancel();
    this.run = undefined;
    this.nextRun?.cancel();
    this.nextRun = undefined;
  }

  /** The handle is closed: drops what it read ahead (its streams finish into the cache). Never throws. */
  close(): void {
    this.stopRun();
    for (const h of this.pending.values()) release(h);
    this.pending.clear();
    readAheadBudget.used -= this.charged;
    this.charged = 0;
    this.streamedTo = -1;
    this.window = 0;
  }
}

/** Gives back the handle's reference to a held block, now or when it arrives. */
function release(h: Held): void {
  if (h.buf) blockPool.unref(h.buf);
  else
    h.p.then(
      (b) => blockPool.unref(b),
      () => undefined,
    );
}
