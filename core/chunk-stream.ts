import type { ServerResponse } from 'node:http';

/**
 * A free list of equal-sized buffers, shared by every transfer of one server. On this
 * project's VMs a fresh 1 MiB buffer costs ~5 ms of page faults (docs/read-pipeline.md,
 * "Fresh memory"), more than reading and sending it from the page cache, and fresh buffers
 * are only reclaimed by a GC much later. At most `keep` idle buffers stay. Never throws.
 */
export class ChunkPool {
  private readonly free: Buffer[] = [];
  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}
  /** A buffer of `size` bytes, not zeroed; give it back when nothing refers to its bytes any more. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }
  give(b: Buffer): void {
    if (this.free.length < this.keep && b.length === this.size) this.free.push(b);
  }
}

/**
 * Writes `chunk` to `res`. Resolves true when more may be written now (at once, or after
 * 'drain'), false when the client went away. `flushed` runs once the chunk has left for the
 * socket (or failed to): only then may its buffer be reused. Never rejects.
 */
export function writeChunk(res: ServerResponse, chunk: string | Buffer, flushed?: () => void): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (flushed ? res.write(chunk, () => flushed()) : res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/** Reads up to `buf.length` bytes at `pos` into `buf`; the count (0 at the end). Throws the read's error. */
export type ReadAt = (buf: Buffer, pos: number) => Promise<number>;

/**
 * Sends bytes [start, start + length) read by `readAt` to `res` in chunks of the pool's size,
 * with up to `ahead` reads in flight ahead of the socket; each chunk goes back to the pool once
 * the socket has flushed it. Returns 'done' after the last byte was written (the caller ends
 * the response), 'short' when the source ended early (the caller must cut the connection:
 * never end a short body as if it were complete), 'gone' when the client went away. Waits for
 * every read it started before it returns. Throws what `readAt` throws (nothing is written
 * after a failed read).
 */
export async function streamRange(
  res: ServerResponse,
  readAt: ReadAt,
  start: number,
  length: number,
  pool: ChunkPool,
  ahead: number,
  sent?: (n: number) => void,
): Promise<'done' | 'short' | 'gone'> {
  const end = start + length;
  const read = async (off: number, n: number): Promise<{ data: Buffer; owner: Buffer }> => {
    const owner = pool.take();
    try {
      const got = await readAt(owner.subarray(0, n), off);
      return { data: owner.subarray(0, got), owner };
    } catch (err) {
      pool.give(owner);
      throw err;
    }
  };
  const queue: Promise<{ data: Buffer; owner: Buffer }>[] = [];
  let nextOff = start;
  const fill = () => {
    while (queue.length < ahead && nextOff < end) {
      const n = Math.min(pool.size, end - nextOff);
      const p = read(nextOff, n);
      p.catch(() => undefined); // observed below; never an unhandled rejection
      queue.push(p);
      nextOff += n;
    }
  };
  try {
    let total = 0;
    fill();
    while (queue.length > 0) {
      const { data, owner } = await queue.shift()!;
      if (data.length === 0) {
        pool.give(owner);
        break; // the file shrank under us
      }
      total += data.length;
      fill();
      sent?.(data.length);
      if (!(await writeChunk(res, data, () => pool.give(owner)))) return 'gone';
    }
    return total < length ? 'short' : 'done';
  } finally {
    // Reads still queued when the client went away (a player seeking cuts GETs all the time): their chunks were never written.
    for (const r of await Promise.allSettled(queue)) if (r.status === 'fulfilled') pool.give(r.value.owner);
  }
}
