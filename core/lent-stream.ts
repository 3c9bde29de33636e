import type { Readable } from 'node:stream';

/**
 * Where a lending stream writes its bytes: `target()` is the buffer to fill next, from its start
 * (an empty one: the bytes are not wanted any more), `filled(n)` says its first `n` bytes now
 * hold the next bytes of the stream. Neither may throw.
 */
export interface LentSink {
  target(): Buffer;
  filled(n: number): void;
}

/**
 * A Readable that can write its bytes straight into buffers its consumer lends it, instead of
 * allocating a chunk per socket read (a 16 KiB TLS record) that the consumer then copies. After
 * `lend`, no 'data' event is emitted; 'end', 'error' and 'close' are as usual, and `pause()` /
 * `resume()` pause and resume the source.
 */
export interface LendingReadable extends Readable {
  lend(sink: LentSink): void;
}

/** True when `s` can write into lent buffers (LendingReadable). */
export function canLend(s: Readable): s is LendingReadable {
  return typeof (s as Partial<LendingReadable>).lend === 'function';
}
