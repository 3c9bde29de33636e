import type { BlobStore } from './blobs';
import type { Db } from './db';
import type { EntryStore } from './entries';
import type { HashPool } from './hash-pool';
import type { LocationStore } from './locations';
import type { TxBatcher } from './tx-batcher';

/** The `vdfs scan --json` summary (DESIGN.md). */
export interface ScanSummary {
  files: number;
  dirs: number;
  bytes: number;
  hashed: number;
  unchanged: number;
  errors: number;
  seconds: number;
}

export interface ScanProgress {
  phase: 'walk' | 'hash';
  files: number;
  dirs: number;
  bytes: number;
  hashedFiles: number;
  hashedBytes: number;
  toHashFiles: number;
  toHashBytes: number;
}

export interface ScanProblem {
  path: string;
  message: string;
}

export interface ScanContext {
  db: Db;
  entries: EntryStore;
  blobs: BlobStore;
  locations: LocationStore;
  /** Lists directories and hashes files (one pool for both stages). */
  pool: HashPool;
  blockSize: number;
  /** vdfs's own state folders (home, cache, staging): never indexed where a location holds them. */
  statePaths?: readonly string[];
  /** `db` is the daemon's connection, written by the mount meanwhile: commit every turn (TxBatcher perTurn). */
  sharedConnection?: boolean;
}

export interface ScanOptions {
  onProgress?: (p: ScanProgress) => void;
  onProblem?: (p: ScanProblem) => void;
  /** Hash even files whose size+mtime+inode are unchanged. */
  rehash?: boolean;
}

/** What the stages of one local scan share: the index, the open transaction, the counters. */
export interface ScanRun {
  ctx: ScanContext;
  opts: ScanOptions;
  tx: TxBatcher;
  progress: ScanProgress;
  /** Problems reported so far. */
  problems: number;
  /** Throttled progress report (at most 10 a second). */
  report(): void;
  /** A problem with one path: counted and reported, never fatal. */
  problem(path: string, message: string): void;
}
