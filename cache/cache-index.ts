/** One cached block as persisted: its key, file name, size, BLAKE3 hex and recency. */
export interface IndexRow {
  key: string;
  /** File name (64 hex chars) under the fan-out directory `file.slice(0, 2)`. */
  file: string;
  size: number;
  /** BLAKE3 hex of the bytes written; checked on every read-back. */
  sum: string;
  /** Recency: a sequence number, larger = used more recently. */
  used: number;
}

/**
 * The persistent part of the block cache: which blocks are on disk, their checksums and their
 * recency. The disk tier keeps the live state in memory and writes it here in batches, so the
 * hot path never waits on it. The cache speaks no SQL: the store comes from the wiring
 * (`index/cache-store.ts`, a SQLite file `index.db` in the cache dir).
 */
export interface CacheIndex {
  /** Every row, least recently used first. Throws FsError EIO. */
  load(): IndexRow[];
  /** Writes one batch (upserts and deletes) atomically. Throws FsError EIO. */
  apply(upserts: IndexRow[], deletes: string[]): void;
  /** Removes every row. Throws FsError EIO. */
  clear(): void;
  /** Closes the store. Never throws. */
  close(): void;
}

/**
 * Opens (or creates) the index file `file` in the cache dir. One that is unreadable, corrupt or
 * of another format is recreated empty (the cache is disposable; the disk tier then removes
 * the block files nobody knows). Throws FsError EIO only when even a fresh one cannot be made.
 */
export type OpenCacheIndex = (file: string) => CacheIndex;
