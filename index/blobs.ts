import type { Statement } from 'better-sqlite3';
import type { Db } from './db';
import { binOf, hexOf } from './hash-sql';

export interface Blob {
  hash: string;
  size: number;
  blockSize: number;
  /** 32 bytes per block, concatenated. */
  blockHashes: Buffer;
  /**
   * The block hashes were computed on this node from bytes whose whole hash is `hash` (or the
   * blob is one block, whose hash is `hash`): they may verify bytes from any source. False: a
   * peer sent them; see BlobStore.peerLists. Absent on put: true.
   */
  trusted?: boolean;
}

/** Block hashes one peer location sent for a blob: they verify only that location's bytes. */
export interface BlockList {
  blockSize: number;
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
    const r = this.db
      .prepare(`SELECT ${hexOf('hash')} AS hash, size, block_size AS blockSize, block_hashes AS blockHashes, trusted FROM blobs WHERE hash = ${binOf('?')}`)
      .get(hash) as (Omit<Blob, 'trusted'> & { trusted: number }) | undefined;
    return r && { ...r, trusted: r.trusted === 1 };
  }

  private putStmt?: Statement;

  /**
   * Records block hashes computed here from the bytes (scan, hashing after a write, a whole
   * blob verified against its hash). They replace a list a peer sent: what this node computed
   * always wins.
   */
  put(b: Blob): void {
    // Prepared once: a scan puts one blob per file.
    this.putStmt ??= this.db.prepare(`INSERT INTO blobs (hash, size, block_size, block_hashes, trusted) VALUES (${binOf('?')}, ?, ?, ?, 1)
      ON CONFLICT(hash) DO UPDATE SET size = excluded.size, block_size = excluded.block_size, block_hashes = excluded.block_hashes, trusted = 1
      WHERE blobs.trusted = 0`);
    this.putStmt.run(b.hash, b.size, b.blockSize, b.blockHashes);
  }

  /**
   * Records what a peer location says about a blob. A one-block list is checked by the hash
   * itself and trusted; a longer one is kept for that location only (the blob row, if new,
   * is marked untrusted). Throws what SQLite throws.
   */
  putFromPeer(locationId: number, b: Blob): void {
    if (b.blockHashes.length === HASH_BYTES && b.blockHashes.toString('hex') === b.hash) return this.put(b);
    this.db
      .prepare(`INSERT INTO blobs (hash, size, block_size, block_hashes, trusted) VALUES (${binOf('?')}, ?, ?, ?, 0) ON CONFLICT(hash) DO NOTHING`)
      .run(b.hash, b.size, b.blockSize, b.blockHashes);
    this.db
      .prepare(
        `INSERT INTO peer_block_lists (location_id, hash, block_size, block_hashes) VALUES (?, ${binOf('?')}, ?, ?)
      ON CONFLICT(location_id, hash) DO UPDATE SET block_size = excluded.block_size, block_hashes = excluded.block_hashes`,
      )
      .run(locationId, b.hash, b.blockSize, b.blockHashes);
  }

  /** The block lists peer locations sent for `hash`, by location id. */
  peerLists(hash: string): Map<number, BlockList> {
    const rows = this.db.prepare(`SELECT location_id AS loc, block_size AS blockSize, block_hashes AS blockHashes FROM peer_block_lists WHERE hash = ${binOf('?')}`).all(hash) as {
      loc: number;
      blockSize: number;
      blockHashes: Buffer;
    }[];
    return new Map(rows.map((r) => [r.loc, { blockSize: r.blockSize, blockHashes: r.blockHashes }]));
  }

  /** Forgets every list a peer location sent (its tree is about to be replaced). */
  forgetPeerLists(locationId: number): void {
    this.db.prepare('DELETE FROM peer_block_lists WHERE location_id = ?').run(locationId);
  }

  /** Removes blobs (and peers' lists) that no entry refers to any more. Returns how many blobs. */
  prune(): number {
    this.db
      .prepare(
        `DELETE FROM peer_block_lists WHERE NOT EXISTS
      (SELECT 1 FROM entries e WHERE e.location_id = peer_block_lists.location_id AND e.hash = peer_block_lists.hash)`,
      )
      .run();
    return this.db.prepare('DELETE FROM blobs WHERE hash NOT IN (SELECT hash FROM entries WHERE hash IS NOT NULL)').run().changes;
  }

  stats(): { blobs: number; bytes: number } {
    const r = this.db.prepare('SELECT count(*) AS blobs, coalesce(sum(size), 0) AS bytes FROM blobs').get() as { blobs: number; bytes: number };
    return r;
  }
}
