import type { Statement } from 'better-sqlite3';
import type { Db } from './db';

export interface Blob {
  hash: string;
  size: number;
  blockSize: number;
  /** 32 bytes per block, concatenated. */
  blockHashes: Buffer;
}

export const HASH_BYTES = 32;

export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

/** The hex hash of block `i`, from a blob's concatenated block hashes. */
export function blockHashAt(blob: Blob, i: number): string {
  return blob.blockHashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES).toString('hex');
}

/** Content known by hash, with the per-block hashes that verify fetched blocks. */
export class BlobStore {
  constructor(private readonly db: Db) {}

  get(hash: string): Blob | undefined {
    return this.db.prepare('SELECT hash, size, block_size AS blockSize, block_hashes AS blockHashes FROM blobs WHERE hash = ?').get(hash) as
      | Blob
      | undefined;
  }

  private putStmt?: Statement;

  put(b: Blob): void {
    // Prepared once: a scan puts one blob per file.
    this.putStmt ??= this.db.prepare('INSERT INTO blobs (hash, size, block_size, block_hashes) VALUES (?, ?, ?, ?) ON CONFLICT(hash) DO NOTHING');
    this.putStmt.run(b.hash, b.size, b.blockSize, b.blockHashes);
  }

  /** Removes blobs that no entry refers to any more. Returns how many. */
  prune(): number {
    return this.db.prepare('DELETE FROM blobs WHERE hash NOT IN (SELECT hash FROM entries WHERE hash IS NOT NULL)').run().changes;
  }

  stats(): { blobs: number; bytes: number } {
    const r = this.db.prepare('SELECT count(*) AS blobs, coalesce(sum(size), 0) AS bytes FROM blobs').get() as { blobs: number; bytes: number };
    return r;
  }
}
