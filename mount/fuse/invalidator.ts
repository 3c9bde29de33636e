import { FsError } from '../../core/fs-error';
import type { VfsCore } from '../vfs/vfs-core';
import type { FuseNode, InodeTable } from './inode-table';

/** What the invalidator needs from the server: the two kernel notifications. */
export interface KernelNotifier {
  invalidateNode(nodeid: number): void;
  invalidateEntry(parent: number, name: string): void;
}

const DEBOUNCE_MS = 50;
const MAX_DELAY_MS = 5000;
const YIELD_EVERY = 512;
/** More changed paths than this between two sweeps: check every node instead. */
const MAX_PATHS = 4096;

/**
 * Keeps the kernel's caches in step with the index: whenever the index changes (watcher
 * rescan, peer change feed, cloud poll, a WebDAV or FUSE write), every node the kernel holds
 * is checked against the index; a changed one gets INVAL_INODE (attributes and cached pages
 * dropped), a vanished name INVAL_ENTRY. A change to known paths (a written file, its
 * directory) checks just their nodes; a change of unknown extent (a rescan, a rename, another
 * process's commit) checks every node the kernel holds (one resolver lookup each; the kernel
 * holds only what it caches), and such full sweeps are spaced by ten times the last one's
 * duration (at most 5 s), so they never take more than a tenth of the JS thread.
 */
export class Invalidator {
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  private lastDurationMs = 0;
  /** Paths changed since the last sweep, or 'all' when the extent is not known. */
  private dirty: Set<string> | 'all' = new Set();

  constructor(private readonly vfs: VfsCore, private readonly inodes: InodeTable, private readonly kernel: KernelNotifier) {
    vfs.resolver.onChange((path) => this.schedule(path));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(path?: string): void {
    if (this.stopped) return;
    if (path === undefined) this.dirty = 'all';
    else if (this.dirty !== 'all') {
      this.dirty.add(path);
      if (this.dirty.size > MAX_PATHS) this.dirty = 'all';
    }
    if (this.running) { this.again = true; return; }
    if (this.timer) return;
    // A few known paths are cheap to check: only a whole-table sweep is spaced by its cost.
    const full = this.dirty === 'all';
    const delay = full ? Math.min(MAX_DELAY_MS, Math.max(DEBOUNCE_MS, 10 * this.lastDurationMs)) : DEBOUNCE_MS;
    this.timer = setTimeout(() => { this.timer = undefined; void this.sweep(); }, delay);
    this.timer.unref();
  }

  /** The node the kernel holds for a canonical path, if any. */
  private nodeAt(path: string): FuseNode | undefined {
    let n: FuseNode | undefined = this.inodes.root;
    for (const name of path.split('/')) if (name !== '') n = n && this.inodes.peek(n, name);
    return n;
  }

  /**
   * One pass over the nodes of the changed paths (every node when the extent of the change is
   * not known); never throws.
   */
  async sweep(): Promise<void> {
    this.running = true;
    const dirty = this.dirty;
    this.dirty = new Set();
    const full = dirty === 'all';
    const started = Date.now();
    try {
      const nodes = full ? [...this.inodes.nodes()] : [...dirty].map((p) => this.nodeAt(p)).filter((n): n is FuseNode => !!n);
      let i = 0;
      for (const node of nodes) {
        if (this.stopped) return;
        if (++i % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
        await this.check(node);
      }
    } finally {
      if (full) this.lastDurationMs = Date.now() - started;
      this.running = false;
      if (this.again) { this.again = false; this.schedule(); }
    }
  }

  /** Compares one node with the index and tells the kernel when it changed or vanished. */
  private async check(node: FuseNode): Promise<void> {
    const last = node.last;
    if (!last || !node.parent || node.unlinked) return;
    try {
      const a = await this.vfs.getattr(this.inodes.pathOf(node));
      if (a.etag !== last.etag || a.size !== last.size || a.mtimeMs !== last.mtimeMs || a.mode !== last.mode || a.type !== last.type) {
        node.last = a;
        node.openEtag = undefined;
        this.kernel.invalidateNode(node.id);
      }
    } catch (err) {
      if (!(err instanceof FsError) || err.code !== 'ENOENT') return;
      node.last = undefined;
      this.kernel.invalidateEntry(node.parent.id, node.name);
      this.kernel.invalidateNode(node.id);
    }
  }
}
