import { availableParallelism } from 'node:os';
import { extname, join } from 'node:path';
import type { DirListing } from './dir-list';
import type { FileHash } from './file-hash';
import type { FsError } from '../core/fs-error';
import { fromJobError, WorkerPool, type JobError } from './worker-pool';

export type { FileHash } from './file-hash';

/** The jobs of the scan pool's workers (index/scan-worker.ts). */
export interface ScanJobs {
  hash: { req: { path: string; blockSize: number }; res: FileHash };
  hashMany: { req: { paths: string[]; blockSize: number }; res: (FileHash | { error: JobError })[] };
  list: { req: { dir: string; ino?: string }; res: DirListing };
}

// The worker is this folder's scan-worker module: .js under dist/, .ts when the sources run
// directly (the test runner's TypeScript loader is inherited by worker threads).
const SCRIPT = join(__dirname, `scan-worker${extname(__filename)}`);

/**
 * The scanner's one worker pool: whole-file hashes (BLAKE3-256, identical to b3sum) with
 * their per-block hashes in one pass, and directory listings (readdir + lstat, never following
 * symlinks). Both throw FsError: hashFile ENOENT, EACCES, EINVAL (not a regular file), EIO;
 * list ENOENT, EACCES, ENOTDIR (replaced during the scan), EIO.
 */
export class HashPool {
  private readonly pool: WorkerPool<ScanJobs>;

  /**
   * `hashThreads` hash at once (default: one per core); directory listings may use up to
   * `listThreads` (default: one per core), so a daemon that hashes on one thread still walks
   * on every core.
   */
  constructor(hashThreads = Math.max(1, availableParallelism()), listThreads = Math.max(1, availableParallelism())) {
    this.pool = new WorkerPool<ScanJobs>(SCRIPT, Math.max(hashThreads, listThreads), hashThreads);
  }

  hashFile(path: string, blockSize: number): Promise<FileHash> {
    return this.pool.run('hash', { path, blockSize }).then(asBuffers);
  }

  /**
   * Several files in one job (small ones: one message per file cost the scan's main thread
   * more than hashing them). Each comes back as its hash or the error hashFile would have
   * thrown for it; the promise itself rejects only when the pool fails (EIO).
   */
  hashFiles(paths: string[], blockSize: number): Promise<(FileHash | FsError)[]> {
    return this.pool.run('hashMany', { paths, blockSize }).then((rs) => rs.map((r) => ('error' in r ? fromJobError(r.error, 'hash') : asBuffers(r))));
  }

  /**
   * One directory. `ino`: the inode the parent's listing saw for `dir` (all but the root);
   * then `dir` is not followed if it is a symlink, and must still be that directory.
   * Goes before queued hash jobs: the walk feeds the rest of the scan.
   */
  list(dir: string, ino?: string): Promise<DirListing> {
    return this.pool.run('list', { dir, ino }, { urgent: true });
  }

  get pending(): number {
    return this.pool.pending;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** A hash as it crossed from the worker (its block hashes a Uint8Array), with a Buffer again. */
function asBuffers(r: FileHash): FileHash {
  return { ...r, blockHashes: Buffer.from(r.blockHashes.buffer, r.blockHashes.byteOffset, r.blockHashes.byteLength) };
}
