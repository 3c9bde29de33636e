import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FsError, toFsError } from '../core/fs-error';
import { reapplyGcTuning } from '../core/idle-gc';

/** The jobs a pool's workers run: per kind, what is sent and what comes back. */
export type JobKinds<J> = { [K in keyof J]: { req: unknown; res: unknown } };

/** A message to a worker. */
export interface JobMessage<J extends JobKinds<J>, K extends keyof J = keyof J> {
  id: number;
  kind: K;
  req: J[K]['req'];
}
/** A thrown error as a worker sends it back: its code and message. */
export interface JobError {
  code?: string;
  message: string;
}
/** A worker's answer: the result, or the error's code and message. */
export interface JobAnswer {
  id: number;
  res?: unknown;
  error?: JobError;
}

/** What a worker sends back for an error it caught. */
export function jobError(err: unknown): JobError {
  const e = err as NodeJS.ErrnoException;
  return { code: e.code, message: e.message };
}

/** A worker's error as the FsError the caller gets (`op` names what failed). */
export function fromJobError(e: JobError, op: string): FsError {
  return toFsError(Object.assign(new Error(e.message), { code: e.code }), op);
}

interface Job {
  msg: { id: number; kind: string; req: unknown };
  resolve: (r: never) => void;
  reject: (e: FsError) => void;
}

/** Jobs queued in each worker at once, so a worker never waits for the main thread to hand it the next one. */
const DEPTH = 4;
/** A worker idle this long is stopped (each thread's V8 heap costs the daemon 15-20 MB of RSS); the next job starts one again. */
const IDLE_MS = 10_000;

/**
 * A pool of worker threads, all running one module (`script`), typed by the jobs it answers.
 * Workers start on first use and do not keep the process alive while idle. Urgent jobs (a
 * directory listing the walk waits for) go before queued ones (thousands of files to hash).
 * `run` rejects with FsError: the worker's error code, or EIO when a worker crashed or the
 * pool is closed; a crashed worker is replaced by none, the others go on. A worker idle for
 * IDLE_MS exits, so an idle daemon holds no worker threads.
 */
export class WorkerPool<J extends JobKinds<J>> {
  private readonly workers: Worker[] = [];
  /** Jobs sent to each worker and not answered yet, oldest first. */
  private readonly inflight = new Map<Worker, Job[]>();
  private readonly urgent: Job[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  /** Workers started so far, less those stopped while idle (a crashed one is not replaced). */
  private started = 0;
  private readonly idleTimers = new Map<Worker, NodeJS.Timeout>();

  /**
   * `size` threads at most; queued (not urgent) jobs run on the first `queuedSize` only, so
   * a daemon can hash on one core while its rescans list on all. Threads start when needed.
   */
  constructor(
    private readonly script: string,
    private readonly size = Math.max(1, availableParallelism()),
    private readonly queuedSize = size,
  ) {}

  run<K extends keyof J & string>(kind: K, req: J[K]['req'], o: { urgent?: boolean } = {}): Promise<J[K]['res']> {
    if (this.closed) return Promise.reject(new FsError('EIO', 'worker pool is closed'));
    this.grow(o.urgent ? this.size : Math.min(this.size, this.queuedSize));
    return new Promise((resolve, reject) => {
      const job: Job = { msg: { id: this.nextId++, kind, req }, resolve: resolve as (r: never) => void, reject };
      (o.urgent ? this.urgent : this.queue).push(job);
      this.pump();
    });
  }

  /** Jobs queued or running. */
  get pending(): number {
    let n = this.queue.length + this.urgent.length;
    for (const q of this.inflight.values()) n += q.length;
    return n;
  }

  private grow(want: number): void {
    for (; this.started < want; this.started++) {
      const w = new Worker(this.script);
      w.unref();
      // Node resets V8's run-time flags as a thread starts: the worker's, and any loader
      // thread it starts after 'online' (--import hooks); both are done by its first answer.
      w.once('online', reapplyGcTuning);
      w.once('message', reapplyGcTuning);
      w.on('message', (m: JobAnswer) => this.done(w, m));
      w.on('error', (err) => this.crashed(w, err));
      this.workers.push(w);
      this.inflight.set(w, []);
    }
  }

  private pump(): void {
    while (this.urgent.length + this.queue.length > 0) {
      const urgent = this.urgent.length > 0;
      let best: Worker | undefined;
      for (const w of urgent ? this.workers : this.workers.slice(0, this.queuedSize)) {
        const n = this.inflight.get(w)!.length;
        if (n < DEPTH && (!best || n < this.inflight.get(best)!.length)) best = w;
      }
      if (!best) return;
      // Urgent ones last in, first out: a depth-first walk keeps its queue (and memory) small.
      const job = urgent ? this.urgent.pop()! : this.queue.shift()!;
      const q = this.inflight.get(best)!;
      if (q.length === 0) {
        best.ref();
        clearTimeout(this.idleTimers.get(best));
        this.idleTimers.delete(best);
      }
      q.push(job);
      best.postMessage(job.msg);
    }
  }

  private done(w: Worker, m: JobAnswer): void {
    const q = this.inflight.get(w)!;
    const i = q.findIndex((j) => j.msg.id === m.id);
    const job = i >= 0 ? q.splice(i, 1)[0] : undefined;
    if (q.length === 0) {
      w.unref();
      this.idleTimers.set(w, setTimeout(() => this.reap(w), IDLE_MS).unref());
    }
    if (job) {
      if (m.error) job.reject(fromJobError(m.error, job.msg.kind));
      else job.resolve(m.res as never);
    }
    this.pump();
  }

  /** Stops a worker that stayed idle; `started` goes down so that the next job may start another. */
  private reap(w: Worker): void {
    this.idleTimers.delete(w);
    if (this.closed || (this.inflight.get(w)?.length ?? 1) > 0) return;
    this.inflight.delete(w);
    const i = this.workers.indexOf(w);
    if (i < 0) return;
    this.workers.splice(i, 1);
    this.started--;
    w.removeAllListeners('error');
    w.on('error', () => undefined); // it is going away: nothing of it is pending
    void w.terminate();
  }

  private crashed(w: Worker, err: Error): void {
    for (const job of this.inflight.get(w) ?? []) job.reject(new FsError('EIO', `worker failed: ${err.message}`, err));
    this.inflight.delete(w);
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    if (this.workers.length === 0) {
      for (const j of [...this.urgent.splice(0), ...this.queue.splice(0)]) j.reject(new FsError('EIO', 'all workers failed'));
    } else this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.idleTimers.values()) clearTimeout(t);
    this.idleTimers.clear();
    for (const j of [...this.urgent.splice(0), ...this.queue.splice(0)]) j.reject(new FsError('EIO', 'worker pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
