import { posix } from 'node:path';
import type { BlockReader } from './block-reader';
import { readAheadBudget } from './block-reader';

/** A file of a folder's listing, in listing order. */
export interface ListedFile {
  name: string;
  size: number;
}

/** What folder read-ahead uses of the VFS core. */
export interface FolderAheadHost {
  /** The files of folder `dir`, in listing (readdir) order; undefined when it is not a folder. Never throws. */
  listing(dir: string): ListedFile[] | undefined;
  /**
   * A reader of the remote content of `path` (verified or version-checked, through the block
   * cache); undefined when there is nothing to fetch ahead (a local disk, a staged copy, not a
   * file, a best replica that is local). Never throws.
   */
  reader(path: string): Promise<BlockReader | undefined>;
}

/** Limits of folder read-ahead. */
export interface FolderAheadOptions {
  /** Files fetched ahead of the last one a walking reader opened. */
  files: number;
  /** Bytes of files queued or being fetched ahead, all folders together. */
  bytes: number;
  /** Files fetched at once, all folders together. */
  concurrency: number;
  /** Larger files are not fetched ahead (the reader's own read-ahead streams them). */
  maxFileBytes: number;
}

export const FOLDER_AHEAD_DEFAULTS: FolderAheadOptions = { files: 8, bytes: 16 * 1024 * 1024, concurrency: 4, maxFileBytes: 8 * 1024 * 1024 };

/** Limits for a block cache of `cacheBytes`: what is fetched ahead never exceeds an eighth of it (so it cannot flush the cache). */
export function folderAheadLimits(cacheBytes: number | undefined): FolderAheadOptions {
  const d = FOLDER_AHEAD_DEFAULTS;
  if (cacheBytes === undefined) return d;
  const bytes = Math.min(d.bytes, Math.floor(cacheBytes / 8));
  return { ...d, bytes, maxFileBytes: Math.min(d.maxFileBytes, bytes) };
}

/** One folder a reader is opening files of. */
interface Walk {
  dir: string;
  files: ListedFile[];
  at: Map<string, number>;
  /** Index of the last file opened, and how many opens in a row went forward in listing order. */
  last: number;
  streak: number;
  /** Highest index queued for fetching ahead. */
  queuedTo: number;
}

interface Job {
  walk: Walk;
  index: number;
  path: string;
  size: number;
  cancelled: boolean;
}

/** A walk step: the next file in listing order, or one or two further (a reader skipping a file it does not want). */
const MAX_STEP = 3;
let scratch = Buffer.alloc(0);

/** Opens in a row, each a step forward in the listing, that make a walk: two adjacent files read by chance should not fetch eight more. */
const WALK = 3;
/** Folders followed at once (the oldest is forgotten). */
const MAX_WALKS = 16;

/**
 * Read-ahead of the next files of a folder when a reader walks it (#17 item 3, docs/read-pipeline.md
 * "Many small files"): three opens in a row of files that follow each other in the folder's listing
 * make a walk; the next `files` small files are then fetched into the block cache (through the
 * same verified readers a reader uses), a bounded number at once and a bounded number of bytes
 * ahead. An open that breaks the pattern cancels what was queued for that folder and stops a
 * fetch in progress at its next block. Counters in `stats`. Nothing here throws.
 */
export class FolderAhead {
  private readonly walks = new Map<string, Walk>();
  private readonly queue: Job[] = [];
  private readonly running = new Set<Job>();
  private aheadBytes = 0;
  private stopped = false;
  readonly stats = { walks: 0, queued: 0, fetched: 0, cancelled: 0, failed: 0 };

  constructor(
    private readonly host: FolderAheadHost,
    readonly opts: FolderAheadOptions = FOLDER_AHEAD_DEFAULTS,
  ) {}

  /** A reader opened `path` (remote content). */
  opened(path: string): void {
    if (this.stopped || this.opts.files <= 0) return;
    const dir = posix.dirname(path);
    const name = posix.basename(path);
    let walk = this.walks.get(dir);
    let index = walk?.at.get(name);
    if (!walk || index === undefined) {
      // new folder, or a name the listing did not have yet (made since): list it again
      walk = this.follow(dir, walk);
      index = walk?.at.get(name);
      if (!walk || index === undefined) return;
    }
    const step = index - walk.last;
    if (step === 0) return; // the same file again
    if (walk.last >= 0 && step > 0 && step <= MAX_STEP) {
      walk.streak++;
    } else {
      walk.streak = 1;
      this.cancel(walk, () => true);
      walk.queuedTo = index;
    }
    walk.last = index;
    // the reader is fetching this one itself, and has moved past the earlier ones
    this.cancel(walk, (j) => j.index <= index && !this.running.has(j));
    if (walk.streak === WALK) this.stats.walks++;
    if (walk.streak >= WALK) this.planAhead(walk);
  }

  /** Stops: nothing new starts; fetches in progress stop at their next block. */
  stop(): void {
    this.stopped = true;
    for (const w of this.walks.values()) this.cancel(w, () => true);
    this.walks.clear();
  }

  private follow(dir: string, old: Walk | undefined): Walk | undefined {
    const files = this.host.listing(dir);
    if (!files) return undefined;
    const walk: Walk = { dir, files, at: new Map(files.map((f, i) => [f.name, i])), last: -1, streak: 0, queuedTo: -1 };
    if (old) {
      this.cancel(old, () => true);
      // keep the walk's place: the names before it have not moved
      const lastName = old.files[old.last]?.name;
      const i = lastName === undefined ? undefined : walk.at.get(lastName);
      if (i !== undefined) Object.assign(walk, { last: i, streak: old.streak, queuedTo: i });
    }
    this.walks.delete(dir);
    this.walks.set(dir, walk);
    while (this.walks.size > MAX_WALKS) {
      const oldest = this.walks.values().next().value as Walk;
      this.cancel(oldest, () => true);
      this.walks.delete(oldest.dir);
    }
    return walk;
  }

  /** Queues the next small files after the reader's, up to `files` ahead and `bytes` in all. */
  private planAhead(walk: Walk): void {
    const end = Math.min(walk.files.length - 1, walk.last + this.opts.files);
    for (let i = Math.max(walk.queuedTo, walk.last) + 1; i <= end; i++) {
      const f = walk.files[i];
      if (f.size > 0 && f.size <= this.opts.maxFileBytes) {
        if (this.aheadBytes + f.size > this.opts.bytes) break; // the rest later, as the reader moves on
        this.aheadBytes += f.size;
        this.queue.push({ walk, index: i, path: walk.dir === '/' ? `/${f.name}` : `${walk.dir}/${f.name}`, size: f.size, cancelled: false });
        this.stats.queued++;
      }
      walk.queuedTo = i;
    }
    this.pump();
  }

  private cancel(walk: Walk, which: (j: Job) => boolean): void {
    for (const j of [...this.queue, ...this.running]) {
      if (j.walk !== walk || j.cancelled || !which(j)) continue;
      j.cancelled = true;
      this.stats.cancelled++;
      const q = this.queue.indexOf(j);
      if (q >= 0) {
        this.queue.splice(q, 1);
        this.aheadBytes -= j.size;
      }
    }
  }

  private pump(): void {
    while (!this.stopped && this.running.size < this.opts.concurrency && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running.add(job);
      void this.fetch(job).finally(() => {
        this.running.delete(job);
        this.aheadBytes -= job.size;
        this.pump();
      });
    }
  }

  /** Reads the file block by block through its reader (verified, cached), keeping nothing. */
  private async fetch(job: Job): Promise<void> {
    // The daemon's streaming memory has one cap: when the readers' read-ahead has used it, fetch nothing ahead.
    if (readAheadBudget.used + job.size > readAheadBudget.limit) return;
    const reader = await this.host.reader(job.path);
    if (!reader) return;
    try {
      // bytes copied out and thrown away: one scratch buffer for every job (nobody reads it)
      if (scratch.length < reader.blockSize) scratch = Buffer.allocUnsafe(reader.blockSize);
      const into = scratch.subarray(0, reader.blockSize);
      for (let at = 0; at < reader.size && !job.cancelled && !this.stopped; at += reader.blockSize) await reader.readInto(at, into);
      if (!job.cancelled) this.stats.fetched++;
    } catch {
      this.stats.failed++; // the reader's own open reads it again and says why
    } finally {
      reader.close();
    }
  }
}
