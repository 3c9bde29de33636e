import { promises as fsp, type BigIntStats } from 'node:fs';
import { toFsError, type FsError } from '../core/fs-error';
import { withParent } from '../core/beneath';
import { entryFromStats } from '../core/local-stat';
import type { ProviderEntry } from '../core/provider';
import type { Entry, EntryFields } from './entries';
import type { FileHash } from './file-hash';
import type { ScanRun } from './scan-types';

/** One file the walk found with no valid hash. */
export interface HashJob {
  entry: Entry;
  abs: string;
  rel: string;
  attempts: number;
}

const HASH_ATTEMPTS = 3;
/**
 * Files listed and not hashed yet, at most: past it the walk waits for the hashers, so a
 * first scan of millions of files holds a bounded queue, not one job per file.
 */
export const HASH_BACKLOG = 20_000;
/**
 * Files of at most SMALL_FILE bytes go to the workers SMALL_BATCH per job, and the worker asks
 * the disk for the whole batch at once (scan-worker.ts). For a tree of small files a message
 * each cost the main thread more than a worker's read and hash, and one blocking read at a
 * time per worker left the disk waiting between them.
 */
const SMALL_FILE = 64 * 1024;
const SMALL_BATCH = 32;

export function fieldsOf(e: ProviderEntry, hash: string | null): EntryFields {
  return { type: e.type, size: e.size, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, mode: e.mode, version: e.version, hash, target: e.target ?? null, rdev: e.rdev ?? null };
}

/**
 * The hash stage: hashes files on the pool as the walk finds them (so the workers start at
 * once) and records each result, sharing the walk's transaction batcher. A file that changed
 * while it was read is looked at again, up to HASH_ATTEMPTS times; one that vanished leaves
 * the index. `finish` throws the first index write that failed (disk full).
 */
export class HashStage {
  private hashed = 0;
  private cancelled = false;
  private inQueue = 0;
  private failed: unknown;
  private drained: (() => void) | undefined;
  private idle: (() => void) | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Small files waiting to go to a worker together. */
  private small: HashJob[] = [];

  constructor(
    private readonly run: ScanRun,
    private readonly rootPath: string,
  ) {}

  /** Files waiting for their hash. */
  get backlog(): number {
    return this.inQueue;
  }

  /** Called when the backlog falls below half its bound (the walk may go on). */
  onDrain(f: () => void): void {
    this.drained = f;
  }

  add(job: HashJob): void {
    this.inQueue++;
    if (job.entry.size > SMALL_FILE) return this.track(this.hashJob(job));
    this.small.push(job);
    // The listing that found it is applied synchronously: what is left of the batch goes right after.
    if (this.small.length === 1) queueMicrotask(() => this.sendSmall());
    else if (this.small.length >= SMALL_BATCH) this.sendSmall();
  }

  private sendSmall(): void {
    const batch = this.small;
    if (batch.length === 0) return;
    this.small = [];
    const { ctx } = this.run;
    const all = ctx.pool.hashFiles(
      batch.map((j) => j.abs),
      ctx.blockSize,
    );
    batch.forEach((job, i) => {
      const first = all.then((rs) => {
        const r = rs[i];
        if (r instanceof Error) throw r;
        return r;
      });
      this.track(this.hashJob(job, first));
    });
  }

  /** Counts a job out when it ends; its promise is then dropped: nothing per file outlives its hash. */
  private track(p: Promise<void>): void {
    p.catch((err) => {
      this.failed ??= err;
    }).finally(() => this.settle());
  }

  /** After a failed walk: results still arriving are dropped, nothing more is written. */
  cancel(): void {
    this.cancelled = true;
    this.small = [];
    if (this.flushTimer) clearTimeout(this.flushTimer);
  }

  /** Waits for every job; returns how many files were hashed. */
  async finish(): Promise<number> {
    try {
      if (this.inQueue > 0) await new Promise<void>((r) => (this.idle = r));
      if (this.failed !== undefined) throw this.failed;
    } finally {
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.run.tx.flush();
    }
    return this.hashed;
  }

  private settle(): void {
    this.inQueue--;
    if (this.inQueue < HASH_BACKLOG / 2) this.drained?.();
    if (this.inQueue === 0) this.idle?.();
  }

  /**
   * Opens (or counts in) the batch before a write; while only hash results arrive, commits at
   * least every 200 ms, so a long scan's progress survives a kill and readers see it.
   */
  private writing(): void {
    this.run.tx.tick();
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      this.run.tx.flush();
    }, 200);
  }

  /** Hashes one file and records it; `first`: its first attempt's hash, already asked for. */
  private async hashJob(job: HashJob, first?: Promise<FileHash>): Promise<void> {
    const { ctx } = this.run;
    for (;;) {
      job.attempts++;
      let r: FileHash;
      try {
        r = await (first ?? ctx.pool.hashFile(job.abs, ctx.blockSize));
        first = undefined;
        if (this.cancelled) return;
      } catch (err) {
        if (this.cancelled) return;
        if ((err as FsError).code !== 'ENOENT') this.run.problem(job.rel, toFsError(err, 'hash').message);
        else this.gone(job);
        return;
      }
      if (!r.changed && `${r.ino}:${r.size}:${r.mtimeNs}` === job.entry.version) return this.record(job, r);
      if (!(await this.restat(job))) return;
      if (job.attempts >= HASH_ATTEMPTS) {
        this.run.problem(job.rel, `changed while being hashed ${HASH_ATTEMPTS} times; left unhashed (scan again when it is quiet)`);
        return;
      }
    }
  }

  private record(job: HashJob, r: FileHash): void {
    const { ctx, progress: p } = this.run;
    this.writing();
    ctx.blobs.put({ hash: r.hash, size: r.size, blockSize: ctx.blockSize, blockHashes: r.blockHashes });
    ctx.entries.update(job.entry, { ...job.entry, hash: r.hash }, job.rel);
    this.hashed++;
    p.hashedFiles++;
    p.hashedBytes += r.size;
    this.run.report();
  }

  /**
   * Changed while (or since) it was listed: records what it is now, and says whether to hash
   * again. Looked up without following a symlink on the way: a directory swapped for a link to
   * somewhere else must not make the scan record (and then hash) a file outside the location.
   */
  private async restat(job: HashJob): Promise<boolean> {
    let st: BigIntStats;
    try {
      st = await withParent(this.rootPath, job.rel, (at) => fsp.lstat(at, { bigint: true }));
    } catch {
      this.gone(job);
      return false;
    }
    if (this.cancelled || !st.isFile()) return false; // replaced by something else; the next scan sees it
    const now = fieldsOf(entryFromStats(job.entry.name, st)!, null);
    this.writing();
    this.run.ctx.entries.update(job.entry, now, job.rel);
    job.entry = { ...job.entry, ...now };
    return true;
  }

  /** Deleted between listing and hashing: it leaves the index now rather than staying as an unhashed ghost until the next scan. */
  private gone(job: HashJob): void {
    this.run.tx.tick();
    this.run.ctx.entries.remove(job.entry, job.rel);
    this.run.progress.files--;
    this.run.progress.bytes -= job.entry.size;
  }
}
