import { FsError } from '../../core/fs-error';
import type { KernelVfs } from '../vfs/types';
import type { InodeTable } from './inode-table';

/** What the invalidator needs from the server: the two kernel notifications. */
export interface KernelNotifier {
  invalidateNode(nodeid: number): void;
  invalidateEntry(parent: number, name: string): void;
}

const DEBOUNCE_MS = 50;
const MAX_DELAY_MS = 5000;
const YIELD_EVERY = 512;

/**
 * Keeps the kernel's caches in step with the index: whenever the index changes (watcher
 * rescan, peer change feed, cloud poll, a WebDAV or FUSE write), every node the kernel holds
 * is checked against the index; a changed one gets INVAL_INODE (attributes and cached pages
 * dropped), a vanished name INVAL_ENTRY. The sweep costs one resolver lookup per node the
 * kernel holds (the kernel holds only what it caches); sweeps are spaced by ten times the
 * last one's duration (at most 5 s), so they never take more than a tenth of the JS thread
 * while a busy writer keeps changing the index.
 */
export class Invalidator {
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  private lastDurationMs = 0;
  /** Sweeps started so far (diagnostics: user.vdfs.fuse `sweeps`). */
  sweeps = 0;
  /** Nodes and names the sweeps invalidated in the kernel so far (user.vdfs.fuse `invalidations`). */
  invalidations = 0;

  constructor(
    private readonly vfs: KernelVfs,
    private readonly inodes: InodeTable,
    private readonly kernel: KernelNotifier,
  ) {
    vfs.onChange(() => this.schedule());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    const delay = Math.min(MAX_DELAY_MS, Math.max(DEBOUNCE_MS, 10 * this.lastDurationMs));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sweep();
    }, delay);
    this.timer.unref();
  }

  /** A sweep is scheduled or running (diagnostics: user.vdfs.fuse `sweepPending`). */
  get pending(): boolean {
    return this.running || this.timer !== undefined;
  }

  /** One pass over the nodes; never throws. */
  async sweep(): Promise<void> {
    this.running = true;
    this.sweeps++;
    const started = Date.now();
    try {
      let i = 0;
      for (const node of [...this.inodes.nodes()]) {
        if (this.stopped) return;
        if (++i % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
        const last = node.last;
        if (!last || !node.parent || node.unlinked) continue;
        try {
          const a = await this.vfs.getattr(this.inodes.pathOf(node));
          if (a.etag !== last.etag || a.size !== last.size || a.mtimeMs !== last.mtimeMs || a.mode !== last.mode || a.type !== last.type) {
            if (a.type !== last.type) {
              // Another object took the name: the kernel looks it up again and gets a new node; this
              // one keeps answering as what it was (a shell may stand in the old folder).
              this.invalidations++;
              this.kernel.invalidateEntry(node.parent.id, node.name);
              this.kernel.invalidateNode(node.id);
              this.inodes.remove(node.parent, node.name);
              continue;
            }
            node.last = a;
            node.openEtag = undefined;
            this.invalidations++;
            this.kernel.invalidateNode(node.id);
          }
        } catch (err) {
          if (!(err instanceof FsError) || err.code !== 'ENOENT') continue;
          node.last = undefined;
          this.invalidations++;
          this.kernel.invalidateEntry(node.parent.id, node.name);
          this.kernel.invalidateNode(node.id);
        }
      }
    } finally {
      this.lastDurationMs = Date.now() - started;
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }
}
