import type { Readable } from 'node:stream';
import { FsError, toFsError } from '../../core/fs-error';
import { blockPool } from '../../cache/block-pool';

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
 */
export async function streamWindow(
  open: OpenRange,
  size: number,
  blockSize: number,
  first: number,
  last: number,
  onBlock: (i: number, data: Buffer) => void,
  onError: (err: FsError) => void,
): Promise<number> {
  const end = Math.min((last + 1) * blockSize, size);
  let i = first;
  // Blocks come from the pool: `onBlock` receives the stream's reference (see cache/block-pool.ts).
  let buf = blockPool.take(Math.min(blockSize, size - i * blockSize), blockSize);
  let fill = 0;
  let stalls = 0;
  while (i <= last) {
    const offset = i * blockSize + fill;
    const before = offset;
    let stream: Readable | undefined;
    try {
      stream = await open(offset, end - offset);
    } catch (err) {
      // Refused before a byte (ESTALE, gone, unreachable after the provider's own retries).
      onError(toFsError(err, `stream of blocks ${first}-${last}`));
      break;
    }
    try {
      await new Promise<void>((resolve, reject) => {
        const s = stream!;
        // 'data' events, not `for await`: a promise per socket chunk (16 KiB TLS records, 8,192
        // per 128 MiB) was a large part of the reader's CPU. Each chunk is copied into its block
        // at once, so nothing piles up (a window is at most MAX_WINDOW_BLOCKS long).
        s.on('data', (chunk: Buffer) => {
          try {
            take(chunk);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
        const take = (chunk: Buffer) => {
          let at = 0;
          while (at < chunk.length && i <= last) {
            const n = Math.min(chunk.length - at, buf.length - fill);
            chunk.copy(buf, fill, at, at + n);
            fill += n;
            at += n;
            if (fill === buf.length) {
              onBlock(i, buf);
              i++;
              fill = 0;
              if (i <= last) buf = blockPool.take(Math.min(blockSize, size - i * blockSize), blockSize);
            }
          }
          if (i > last) resolve(); // a server that sent more than asked: stop at the window's end
        };
        s.once('end', resolve);
        s.once('error', reject);
        s.once('close', () => (s.readableEnded ? resolve() : reject(new FsError('EHOSTDOWN', 'the stream closed before its end'))));
      });
    } catch (err) {
      onError(toFsError(err, `stream of blocks ${first}-${last}`));
    } finally {
      stream?.destroy();
    }
    if (i > last) break;
    const now = i * blockSize + fill;
    stalls = now > before ? 0 : stalls + 1;
    if (stalls >= MAX_RESUMES) {
      onError(new FsError('EIO', `stream of blocks ${first}-${last}: no progress at byte ${now} after ${MAX_RESUMES} attempts`));
      break;
    }
  }
  return i;
}

/** A promise and its resolve, for blocks a window hands over later. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T | Promise<T>) => void } {
  let resolve!: (v: T | Promise<T>) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
