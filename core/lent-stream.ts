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

/** The longest body `bufferedBody` lends one buffer for (a Drive window is 8 MiB); longer ones are collected in chunks. */
const MAX_LENT_BODY = 16 * 1024 * 1024;

/**
 * A whole, bounded body as one Buffer. An answer already collecting its body (HttpPool.get's
 * `collect`) is waited for; a lending stream whose length is known (`length`: its
 * content-length) writes straight into one buffer of that size: no chunk per socket read and no
 * concatenation. Other streams are collected chunk by chunk. Resolves with the bytes that came,
 * fewer than `length` when the stream closed early without an error (the caller checks the
 * length); rejects with the stream's error.
 */
export function bufferedBody(body: Readable, length?: number): Promise<Buffer> {
  if ((body as Partial<CollectingReadable>).collected !== undefined) return whenCollected(body as CollectingReadable);
  if (!canLend(body) || length === undefined || !Number.isSafeInteger(length) || length <= 0 || length > MAX_LENT_BODY) return collected(body);
  const buf = Buffer.allocUnsafe(length);
  let fill = 0;
  return new Promise<Buffer>((resolve, reject) => {
    const done = () => resolve(buf.subarray(0, fill));
    body.once('end', done);
    body.once('close', done);
    body.once('error', reject);
    body.lend({
      target: () => buf.subarray(fill),
      filled: (n) => {
        fill += n;
      },
    });
  });
}

/** A Readable that may be writing its whole body into one buffer of its own (core/http1-conn.ts, `collect`). */
interface CollectingReadable extends Readable {
  /** The bytes so far, or undefined when the body is not collected that way. */
  readonly collected: Buffer | undefined;
}

/** The collected body once the stream has ended (or closed early: the bytes that came); rejects with its error. */
function whenCollected(body: CollectingReadable): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const done = () => (body.errored ? reject(body.errored) : resolve(body.collected!));
    // Ended before the caller got here (a small body arrives with its head): 'end' has been emitted.
    if (body.readableEnded || body.destroyed) return done();
    body.once('end', done);
    body.once('close', done);
    body.once('error', reject);
  });
}

async function collected(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}
