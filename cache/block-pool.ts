/**
 * Reusable, reference-counted buffers for streamed blocks (docs/read-pipeline.md "Memory while
 * streaming"). A streamed 1 MiB block lives long enough (read ahead, then queued for the cache
 * disk) to reach V8's old generation, where a freed one waits for a full GC: dead blocks piled up
 * to tens of MB of the daemon's RSS. Blocks taken from here go back to a small free list when
 * their last holder lets go, and are used again.
 *
 * Holders: the stream filling a block (`take` gives it one reference), which hands it to the
 * handle that read it ahead (BlockReader), the cache's write-behind queue (BlockCache.keep) and a
 * read copying out of it (BlockReader.readInto) take their own (`ref`) and give it back (`unref`)
 * when done. A holder that forgets to `unref` only leaves the buffer to the GC; a pooled buffer
 * must never be kept by anyone who did not take a reference (copy it instead: `pooled`).
 * Buffers not from the pool are ignored by `ref`/`unref`. Never throws.
 */
export class BlockPool {
  private readonly free = new Map<number, ArrayBufferLike[]>();
  private readonly refs = new WeakMap<ArrayBufferLike, number>();
  private freeBytes = 0;
  /** Counters; `live`: pooled buffers held now (taken, last reference not given back yet). */
  readonly stats = { taken: 0, reused: 0, returned: 0, live: 0, peakLive: 0 };

  /** `maxFreeBytes`: buffers kept for reuse, all sizes together. */
  constructor(readonly maxFreeBytes: number) {}

  /** A buffer of `length` bytes (of a block of `capacity` bytes) with one reference. Not zeroed. */
  take(length: number, capacity: number): Buffer {
    if (length <= 0 || length > capacity || capacity > this.maxFreeBytes) return Buffer.allocUnsafe(length);
    const ab = this.free.get(capacity)?.pop();
    this.stats.taken++;
    if (ab) {
      this.stats.reused++;
      this.freeBytes -= capacity;
    }
    // allocUnsafeSlow: a buffer of its own (not a slice of Node's shared 8 KiB pool), not zeroed
    const buf = ab ?? Buffer.allocUnsafeSlow(capacity).buffer;
    this.refs.set(buf, 1);
    this.stats.live++;
    this.stats.peakLive = Math.max(this.stats.peakLive, this.stats.live);
    return Buffer.from(buf, 0, length);
  }

  /** True when `b` is a pooled buffer still held (it must not be kept without a reference). */
  pooled(b: Buffer): boolean {
    return (this.refs.get(b.buffer) ?? 0) > 0;
  }

  ref(b: Buffer): void {
    const n = this.refs.get(b.buffer);
    if (n !== undefined && n > 0) this.refs.set(b.buffer, n + 1);
  }

  /** Drops one reference; the last one returns the buffer to the free list (or to the GC when it is full). */
  unref(b: Buffer): void {
    const n = this.refs.get(b.buffer);
    if (n === undefined || n <= 0) return;
    if (n > 1) {
      this.refs.set(b.buffer, n - 1);
      return;
    }
    this.refs.delete(b.buffer);
    this.stats.live--;
    const capacity = b.buffer.byteLength;
    if (this.freeBytes + capacity > this.maxFreeBytes) return;
    let list = this.free.get(capacity);
    if (!list) this.free.set(capacity, (list = []));
    list.push(b.buffer);
    this.freeBytes += capacity;
    this.stats.returned++;
  }

  /** Bytes kept for reuse now. */
  get idleBytes(): number {
    return this.freeBytes;
  }
}

/** The daemon's pool of streamed blocks: up to 16 MiB of idle blocks kept for reuse. */
export const blockPool = new BlockPool(16 * 1024 * 1024);
