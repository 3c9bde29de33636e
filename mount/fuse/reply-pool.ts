import { OUT_HEADER, replyBuffer } from './proto';

/** READ replies at least this big are reused. */
const POOLED_MIN = 64 * 1024;
/** Free replies kept per size: about as many as READs are in flight at once. */
const KEEP = 4;

/** Free replies by total length (header + payload). */
const free = new Map<number, Buffer[]>();
/** The whole buffer behind each pooled reply (a handler answers with a slice of it). */
const owners = new WeakMap<ArrayBufferLike, Buffer>();

/**
 * A reply buffer for a READ of `size` bytes (as proto.replyBuffer), taken from a pool when
 * big: a sequential reader at 1 MiB per READ would otherwise leave 1 MiB of garbage per READ,
 * which the GC frees late and which then shows in the daemon's RSS (docs/read-pipeline.md).
 * Hand it back with recycleReply once it is written. Never throws.
 */
export function readReplyBuffer(req: Buffer, size: number): Buffer {
  if (size < POOLED_MIN) return replyBuffer(req, size);
  const out = free.get(OUT_HEADER + size)?.pop();
  if (!out) {
    const fresh = Buffer.allocUnsafeSlow(OUT_HEADER + size); // its own ArrayBuffer: owners is keyed by it
    owners.set(fresh.buffer, fresh);
    return header(fresh, req);
  }
  return header(out, req);
}

function header(out: Buffer, req: Buffer): Buffer {
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(0, 4);
  req.copy(out, 8, 8, 16);
  return out;
}

/**
 * Gives a reply back to the pool after it was written to the kernel (the addon's reply()
 * copies it synchronously). `buf` may be a slice of a pooled reply; any other buffer is
 * ignored. Never throws.
 */
export function recycleReply(buf: Buffer): void {
  const whole = owners.get(buf.buffer);
  if (!whole) return;
  let list = free.get(whole.length);
  if (!list) free.set(whole.length, (list = []));
  if (list.length < KEEP && !list.includes(whole)) list.push(whole);
}
