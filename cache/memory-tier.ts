import { LRUCache } from 'lru-cache';

/** A block held in memory with the BLAKE3 hex of its bytes (verified when it was loaded). */
export interface MemoryBlock {
  data: Buffer;
  sum: string;
}

/**
 * The small in-memory tier in front of the disk tier: an LRU bounded in bytes
 * (lru-cache `maxSize` + `sizeCalculation`). A block larger than the whole budget is
 * simply not kept (lru-cache drops entries over `maxEntrySize`). A budget of 0 disables it.
 * Never throws.
 */
export class MemoryTier {
  private readonly lru: LRUCache<string, MemoryBlock> | undefined;

  constructor(readonly maxBytes: number) {
    this.lru = maxBytes > 0 ? new LRUCache<string, MemoryBlock>({ maxSize: maxBytes, sizeCalculation: (b) => Math.max(1, b.data.length) }) : undefined;
  }

  get(key: string): MemoryBlock | undefined {
    return this.lru?.get(key);
  }

  set(key: string, block: MemoryBlock): void {
    if (this.lru && block.data.length <= this.maxBytes) this.lru.set(key, block);
  }

  delete(key: string): void {
    this.lru?.delete(key);
  }

  clear(): void {
    this.lru?.clear();
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  get count(): number {
    return this.lru?.size ?? 0;
  }
}
