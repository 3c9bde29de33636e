import { loadNativeFuse } from '../core/native-addon';

/** The slab's memory: untouched slots cost address space only. */
function allocSlab(bytes: number): Buffer {
  const made = loadNativeFuse().addon?.hugePageBuffer?.(bytes);
  // allocUnsafeSlow: not zeroed
  return typeof made === 'object' ? Buffer.from(made, 0, bytes) : Buffer.allocUnsafeSlow(bytes);
}

/**
 * Reusable, reference-counted buffers for streamed blocks (docs/read-pipeline.md "Memory while
 * streaming"). A streamed 1 MiB block lives long enough (read ahead, then queued for the cache
 * disk) to reach V8's old generation, where a freed one waits for a full GC: dead blocks piled up
 * to tens of MB of the daemon's RSS. Blocks taken from here go back to the pool when their last
 * holder lets go, and are used again.
 *
 * Blocks of the slab's size are slots of one slab: its own mapping, never part of the malloc
 * heap (the native addon's `hugePageBuffer`, advised for huge pages; without the addon a single
 * allocation at least glibc's largest mmap threshold, 32 MiB). A slot's pages become resident
 * when first used and stay so; the lowest free slot is always taken, so the slab's resident size
 * is the most blocks ever held at once (≤ its size, rounded up to 2 MiB with huge pages),
 * however much is streamed. Huge pages because a fresh daemon's first blocks paid for fresh
 * memory: on this project's VMs ~8 ms per new MiB of 4 KiB pages (a fault per page in the read
 * that fills it, another at the first pass over it), more than reading and hashing it
 * (docs/read-pipeline.md, "Fresh memory"). 1 MiB buffers allocated one by one came from the
 * malloc heap (glibc raises its mmap threshold after the first big free), where freed ones left
 * holes that kept the heap's peak ~15–25 MB above what was live. Other sizes use a free list
 * (≤ `maxFreeBytes` idle); a block of the slab's size taken while every slot is held is left to
 * the GC when given back (kept, such blocks stayed resident beside the slab: up to 16 MiB over a
 * long stream).
 *
 * Holders: the stream filling a block (`take` gives it one reference), which hands it to the
 * handle that read it ahead (BlockReader), the cache's write-behind queue (BlockCache.keep) and a
 * read copying out of it (BlockReader.readInto) take their own (`ref`) and give it back (`unref`)
 * when done. A holder that forgets to `unref` only leaves the buffer (or slot) unused; a pooled
 * buffer must never be kept by anyone who did not take a reference (copy it instead: `pooled`).
 * Buffers not from the pool are ignored by `ref`/`unref`. Never throws.
 */
export class BlockPool {
  private readonly free = new Map<number, ArrayBufferLike[]>();
  private readonly refs = new WeakMap<ArrayBufferLike, number>();
  private freeBytes = 0;
  private slab: Buffer | undefined;
  /** References per slot of the slab. */
  private readonly slotRefs: Int32Array;
  /** Slots used at least once (their pages are resident). */
  private touched = 0;
  /** Counters; `live`: pooled buffers held now (taken, last reference not given back yet). */
  readonly stats = { taken: 0, reused: 0, returned: 0, live: 0, peakLive: 0, slabLive: 0, overflow: 0 };

  /**
   * `maxFreeBytes`: buffers kept for reuse outside the slab, all sizes together. `slab`: blocks of
   * `blockSize` bytes are slots of one slab of `slots` blocks, allocated at the first take.
   */
  constructor(
    readonly maxFreeBytes: number,
    readonly slab_: { blockSize: number; slots: number } = { blockSize: 0, slots: 0 },
  ) {
    this.slotRefs = new Int32Array(slab_.slots);
  }

  /** A buffer of `length` bytes (of a block of `capacity` bytes) with one reference. Not zeroed. */
  take(length: number, capacity: number): Buffer {
    if (length <= 0 || length > capacity) return Buffer.allocUnsafe(Math.max(0, length));
    if (capacity === this.slab_.blockSize) {
      const slot = this.slotRefs.indexOf(0);
      if (slot >= 0) return this.takeSlot(slot, length);
      this.stats.overflow++;
    }
    if (capacity > this.maxFreeBytes) return Buffer.allocUnsafe(length);
    const ab = this.free.get(capacity)?.pop();
    this.stats.taken++;
    if (ab) {
      this.stats.reused++;
      this.freeBytes -= capacity;
    }
    // allocUnsafeSlow: a buffer of its own (not a slice of Node's shared 8 KiB pool), not zeroed
    const buf = ab ?? Buffer.allocUnsafeSlow(capacity).buffer;
    this.refs.set(buf, 1);
    this.held();
    return Buffer.from(buf, 0, length);
  }

  private takeSlot(slot: number, length: number): Buffer {
    this.slab ??= allocSlab(this.slab_.blockSize * this.slab_.slots);
    this.stats.taken++;
    if (slot < this.touched) this.stats.reused++;
    else this.touched = slot + 1;
    this.slotRefs[slot] = 1;
    this.stats.slabLive++;
    this.held();
    return Buffer.from(this.slab.buffer, this.slab.byteOffset + slot * this.slab_.blockSize, length);
  }

  private held(): void {
    this.stats.live++;
    this.stats.peakLive = Math.max(this.stats.peakLive, this.stats.live);
  }

  /** The slot `b` is (a view of), or -1. */
  private slotOf(b: Buffer): number {
    if (!this.slab || b.buffer !== this.slab.buffer) return -1;
    return Math.floor((b.byteOffset - this.slab.byteOffset) / this.slab_.blockSize);
  }

  /** True when `b` is a pooled buffer still held (it must not be kept without a reference). */
  pooled(b: Buffer): boolean {
    const slot = this.slotOf(b);
    if (slot >= 0) return this.slotRefs[slot] > 0;
    return (this.refs.get(b.buffer) ?? 0) > 0;
  }

  ref(b: Buffer): void {
    const slot = this.slotOf(b);
    if (slot >= 0) {
      if (this.slotRefs[slot] > 0) this.slotRefs[slot]++;
      return;
    }
    const n = this.refs.get(b.buffer);
    if (n !== undefined && n > 0) this.refs.set(b.buffer, n + 1);
  }

  /** Drops one reference; the last one returns the buffer to the pool (or to the GC when the free list is full). */
  unref(b: Buffer): void {
    const slot = this.slotOf(b);
    if (slot >= 0) {
      if (this.slotRefs[slot] <= 0) return;
      if (--this.slotRefs[slot] > 0) return;
      this.stats.live--;
      this.stats.slabLive--;
      this.stats.returned++;
      return;
    }
    const n = this.refs.get(b.buffer);
    if (n === undefined || n <= 0) return;
    if (n > 1) {
      this.refs.set(b.buffer, n - 1);
      return;
    }
    this.refs.delete(b.buffer);
    this.stats.live--;
    const capacity = b.buffer.byteLength;
    // a slab-sized block taken while every slot was held: kept, it would stay resident beside the slab
    if (capacity === this.slab_.blockSize && this.slab_.slots > 0) return;
    if (this.freeBytes + capacity > this.maxFreeBytes) return;
    let list = this.free.get(capacity);
    if (!list) this.free.set(capacity, (list = []));
    list.push(b.buffer);
    this.freeBytes += capacity;
    this.stats.returned++;
  }

  /** Bytes kept for reuse now: free slots already used once, and the free list. */
  get idleBytes(): number {
    return (this.touched - this.slotRefs.slice(0, this.touched).filter((n) => n > 0).length) * this.slab_.blockSize + this.freeBytes;
  }

  /** Bytes of the slab that are resident (slots used at least once). */
  get slabResidentBytes(): number {
    return this.touched * this.slab_.blockSize;
  }
}

/**
 * The daemon's write-behind queue (BlockCacheOptions.writeQueueBytes, app/block-store.ts):
 * streamed blocks waiting for the cache disk. 16 MiB: at 32 the queue sat full through a long
 * stream (the disk falls behind once dirty pages pile up) and its 32 resident MiB were the part of
 * the daemon's RSS that grew with the amount streamed (docs/read-pipeline.md "Memory while
 * streaming"); a block that finds it full is not cached, the reader never waits.
 */
export const WRITE_QUEUE_BYTES = 16 * 1024 * 1024;

/**
 * The daemon's pool of streamed blocks: a slab of 32 blocks of 1 MiB — the read-ahead budget of
 * 16 MiB (mount/vfs/block-reader.ts) and the write-behind queue (WRITE_QUEUE_BYTES); the few
 * blocks beyond those (being filled, held by a reader over the budget) come from outside the slab
 * and are not kept — and up to 16 MiB of other idle blocks.
 */
export const blockPool = new BlockPool(16 * 1024 * 1024, { blockSize: 1024 * 1024, slots: 32 });
