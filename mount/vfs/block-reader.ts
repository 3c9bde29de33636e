const MAX_WINDOW_BLOCKS = 32;
const MAX_PREFETCH_INFLIGHT = 4;

/**
 * Reads fixed-size blocks of one piece of content and serves byte ranges from them, with a
 * read-ahead window that starts at 2 blocks and doubles up to 32 while reads are sequential
 * (at most 4 prefetches in flight). Subclasses say how a block is obtained (through the block
 * cache, verified or keyed by version). One reader per open handle.
 */
export abstract class BlockReader {
  private nextOffset = -1;
  private window = 0;
  private prefetchedTo = -1;
  private prefetchInflight = 0;

  constructor(readonly size: number, readonly blockSize: number) {}

  /** Block `i`, whole (the last one may be short). Throws FsError. */
  protected abstract block(i: number): Promise<Buffer>;

  /** Up to `length` bytes from `offset`, short only at the end. Throws what `block` throws. */
  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, this.size);
    if (offset >= end) return Buffer.alloc(0);
    const bs = this.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    this.trackSequential(offset, end, last);
    const blocks = await Promise.all(Array.from({ length: last - first + 1 }, (_, k) => this.block(first + k)));
    if (blocks.length === 1) return blocks[0].subarray(offset - first * bs, end - first * bs);
    return Buffer.concat(blocks).subarray(offset - first * bs, end - first * bs);
  }

  private trackSequential(offset: number, end: number, lastBlock: number): void {
    const sequential = offset === this.nextOffset;
    this.nextOffset = end;
    if (!sequential) {
      this.window = 0;
      return;
    }
    this.window = Math.min(Math.max(2, this.window * 2), MAX_WINDOW_BLOCKS);
    const blocks = Math.ceil(this.size / this.blockSize);
    const to = Math.min(lastBlock + this.window, blocks - 1);
    for (let i = Math.max(lastBlock + 1, this.prefetchedTo + 1); i <= to && this.prefetchInflight < MAX_PREFETCH_INFLIGHT; i++) {
      this.prefetchedTo = i;
      this.prefetchInflight++;
      this.block(i)
        .catch(() => undefined) // a failed prefetch is retried by the real read
        .finally(() => this.prefetchInflight--);
    }
  }
}
