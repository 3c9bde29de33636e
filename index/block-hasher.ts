import { Blake3Hasher } from '@napi-rs/blake-hash';

/** A whole-content hash and its per-block hashes, as b3sum computes them. */
export interface BlockHashes {
  /** BLAKE3-256 of all the bytes, hex. */
  hash: string;
  /** BLAKE3-256 of each `blockSize` block (the last one may be short), 32 bytes each, concatenated. */
  blockHashes: Buffer;
  size: number;
}

/**
 * The one BLAKE3 block loop of vdfs: fed bytes in chunks of any size (a stream's, or a file
 * read block by block), it hashes the whole content and each block in one pass. Used by the
 * local hash worker and by remote hashing, so both give the same answer. Never throws.
 */
export class BlockHasher {
  private readonly whole = new Blake3Hasher();
  private readonly block = new Blake3Hasher();
  private blocks: Buffer[] = [];
  private inBlock = 0;
  private size = 0;
  /**
   * The first block's bytes, kept until a second block shows up: the hash of content that
   * fits in one block is its block hash, so most files (small ones) are hashed once, not twice.
   */
  private first: Buffer | undefined;
  private spilled = false;

  constructor(readonly blockSize: number) {}

  /** Starts over (a worker reuses one hasher for every file). */
  reset(): void {
    this.whole.reset();
    this.block.reset();
    this.blocks = [];
    this.inBlock = 0;
    this.size = 0;
    this.spilled = false;
  }

  update(chunk: Buffer): void {
    let c = chunk;
    while (c.length > 0) {
      const take = Math.min(c.length, this.blockSize - this.inBlock);
      const part = c.subarray(0, take);
      if (this.inBlock === 0 && this.size > 0) this.spill();
      if (this.spilled) this.whole.update(part);
      else {
        this.first ??= Buffer.allocUnsafe(this.blockSize);
        part.copy(this.first, this.inBlock);
      }
      this.block.update(part);
      this.inBlock += take;
      this.size += take;
      c = c.subarray(take);
      if (this.inBlock === this.blockSize) {
        this.blocks.push(this.block.digestBuffer());
        this.block.reset();
        this.inBlock = 0;
      }
    }
  }

  /** The hashes of everything fed since the last reset. */
  digest(): BlockHashes {
    if (this.inBlock > 0) {
      this.blocks.push(this.block.digestBuffer());
      this.block.reset();
      this.inBlock = 0;
    }
    const hash = this.spilled ? this.whole.digest('hex') : this.blocks.length === 1 ? this.blocks[0].toString('hex') : this.whole.digest('hex');
    return { hash, blockHashes: Buffer.concat(this.blocks), size: this.size };
  }

  /** A second block begins: the whole-content hash needs the first block's bytes after all. */
  private spill(): void {
    if (this.spilled) return;
    this.whole.update(this.first!.subarray(0, this.blockSize));
    this.spilled = true;
  }
}
