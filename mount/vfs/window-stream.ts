import type { Readable } from 'node:stream';
import { FsError, toFsError } from '../../core/fs-error';
import { blockPool } from '../../cache/block-pool';
import { lentBytes, streamedBytes } from '../../core/idle-gc';
import { canLend } from '../../core/lent-stream';

/** Opens bytes [offset, offset + length) of one source as a stream (Provider.readRangeStream). */
export type OpenRange = (offset: number, length: number) => Promise<Readable>;

/** A cut stream is asked again for the rest this many times in a row without progress. */
const MAX_RESUMES = 3;

/**
 * Streams blocks `first`..`last` of content of `size` bytes cut in `blockSize` blocks, as one
 * ranged request (`open`), and calls `onBlock(i, bytes)` as soon as each block is complete —
 * so the reader waiting for block `first` is not held up by the rest of the window; the block
 * is a pooled buffer whose one reference `onBlock` now owns (cache/block-pool.ts). A stream
 * that ends short or fails midway is opened again from the exact byte it stopped at (the
 * partial block kept), up to MAX_RESUMES times in a row without progress. Resolves with the
 * index of the first block not delivered (`last + 1` when all were); never rejects: the
 * caller fetches undelivered blocks another way, and `onError` hears why they were not. A
 * request refused before its first byte is not repeated (the provider already retried it).
 * `gate`, asked after each block, paces a long stream (BlockRun): true goes on, false stops
 * there, a promise pauses the stream (TCP holds the rest at the server) until it says which.
 */
export async function streamWindow(
  open: OpenRange,
  size: number,
  blockSize: number,
  first: number,
  last: number,
  onBlock: (i: number, data: Buffer) => void,
  onError: (err: FsError) => void,
  gate: () => boolean | Promise<boolean> = () => true,
): Promise<number> {
  const end = Math.min((last + 1) * blockSize, size);
  const cut = new Cutter(size, blockSize, first, last, onBlock, gate);
  let stalls = 0;
  while (cut.i <= last && !cut.stopped) {
    const before = cut.at;
    let stream: Readable | undefined;
    try {
      stream = await open(before, end - before);
    } catch (err) {
      // Refused before a byte (ESTALE, gone, unreachable after the provider's own retries).
      onError(toFsError(err, `stream of blocks ${first}-${last}`));
      break;
    }
    try {
      await cut.drain(stream);
    } catch (err) {
      onError(toFsError(err, `stream of blocks ${first}-${last}`));
    } finally {
      stream.destroy();
    }
    if (cut.i > last || cut.stopped) break;
    // A paused stream cut meanwhile (the server's idle timeout) is reopened once the reader wants more.
    if (!(await gate())) break;
    stalls = cut.at > before ? 0 : stalls + 1;
    if (stalls >= MAX_RESUMES) {
      onError(new FsError('EIO', `stream of blocks ${first}-${last}: no progress at byte ${cut.at} after ${MAX_RESUMES} attempts`));
      break;
    }
  }
  cut.done();
  return cut.i;
}

/** Cuts the bytes of one or more consecutive streams into blocks `i`..`last` (streamWindow). */
class Cutter {
  i: number;
  stopped = false;
  // Blocks come from the pool: `onBlock` receives the stream's reference (see cache/block-pool.ts).
  private buf: Buffer;
  private fill = 0;

  constructor(
    private readonly size: number,
    private readonly blockSize: number,
    first: number,
    private readonly last: number,
    private readonly onBlock: (i: number, data: Buffer) => void,
    private readonly gate: () => boolean | Promise<boolean>,
  ) {
    this.i = first;
    this.buf = this.take();
  }

  /** The byte the next stream starts at (the partial block is kept). */
  get at(): number {
    return this.i * this.blockSize + this.fill;
  }

  /** Consumes `s` until it ends, fails, or the window is complete or stopped. */
  drain(s: Readable): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Asked after each block but the window's last: a run's reader may not want more yet.
      const pace = () => {
        const g = this.gate();
        if (g === false) this.stopped = true;
        else if (g !== true) {
          s.pause();
          void g.then((go) => {
            if (go) s.resume();
            else {
              this.stopped = true;
              resolve();
            }
          });
        }
      };
      if (canLend(s)) {
        // The source writes straight into the block being filled: no chunk, no copy (a peer's body).
        s.lend({
          target: () => (this.i <= this.last && !this.stopped ? this.buf.subarray(this.fill) : Buffer.alloc(0)),
          filled: (n) => {
            lentBytes(n);
            if (this.filled(n, pace)) resolve();
          },
        });
      }
      // 'data' events, not `for await`: a promise per socket chunk (16 KiB TLS records, 8,192
      // per 128 MiB) was a large part of the reader's CPU. Each chunk is copied into its block
      // at once; a long run is paced by pausing the stream (`gate`), never by queueing chunks.
      else
        s.on('data', (chunk: Buffer) => {
          try {
            const done = this.cut(chunk, pace);
            streamedBytes(chunk.length); // the chunk is garbage now: collect such chunks every few MiB
            if (done) resolve(); // a server that sent more than asked: stop at the window's end
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      s.once('end', resolve);
      s.once('error', reject);
      s.once('close', () => (s.readableEnded ? resolve() : reject(new FsError('EHOSTDOWN', 'the stream closed before its end'))));
    });
  }

  /** `n` more bytes were written into the block at `fill` (a lending source); true when done (window complete or stopped). */
  private filled(n: number, pace: () => void): boolean {
    if (this.i > this.last || this.stopped) return true;
    this.fill += n;
    if (this.fill === this.buf.length) this.complete(pace);
    return this.i > this.last || this.stopped;
  }

  /** The block being filled is complete: handed over, and the next one taken. */
  private complete(pace: () => void): void {
    this.onBlock(this.i, this.buf);
    this.i++;
    this.fill = 0;
    if (this.i <= this.last) {
      this.buf = this.take();
      pace();
    }
  }

  /** Copies `chunk` into blocks, handing each over when complete; true when done (window complete or stopped). */
  private cut(chunk: Buffer, pace: () => void): boolean {
    let at = 0;
    while (at < chunk.length && this.i <= this.last && !this.stopped) {
      const n = Math.min(chunk.length - at, this.buf.length - this.fill);
      chunk.copy(this.buf, this.fill, at, at + n);
      this.fill += n;
      at += n;
      if (this.fill === this.buf.length) this.complete(pace);
    }
    return this.i > this.last || this.stopped;
  }

  private take(): Buffer {
    return blockPool.take(Math.min(this.blockSize, this.size - this.i * this.blockSize), this.blockSize);
  }

  /** The block being filled was never handed over: its buffer goes back. */
  done(): void {
    if (this.i <= this.last) blockPool.unref(this.buf);
  }
}

/** A promise and its resolve, for blocks a window hands over later. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T | Promise<T>) => void } {
  let resolve!: (v: T | Promise<T>) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
