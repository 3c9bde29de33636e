import { FsError } from '../../core/fs-error';
import type { KernelVfs, PathChange } from '../vfs/types';
import type { FuseNode, InodeTable } from './inode-table';

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
 * rescan, peer change feed, cloud poll, a WebDAV or FUSE write), the nodes the kernel holds
 * that the change may concern are checked against the index; a changed one gets INVAL_INODE
 * (attributes and cached pages dropped), a vanished name INVAL_ENTRY. A change of one path
 * concerns the node at that path (with its subtree for a folder replaced or moved) and its
 * folder's node (its mtime and listing). A change whose extent is not known (a rescan, another
 * process's commit, a peer's feed) checks every node the kernel holds: one resolver lookup
 * each. A name the kernel was told does not exist (InodeTable.negatives) gets INVAL_ENTRY once
 * the index has it: checked for a changed path, and for every such name on a full sweep.
 * Sweeps are spaced by ten times the last one's duration (at most 5 s), so they never take
 * more than a tenth of the JS thread while a busy writer keeps changing the index.
 */
export class Invalidator {
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  private lastDurationMs = 0;
  /** Sweeps started so far. */
  sweeps = 0;
  /** Nodes and names the sweeps invalidated in the kernel so far. */
  invalidations = 0;
  /** Nodes the sweeps checked against the index so far. */
  swept = 0;
  /** What changed since the last sweep began: paths (with their `subtree` flag), or all of it. */
  private dirty: Map<string, boolean> | 'all' = new Map();

  constructor(
    private readonly vfs: KernelVfs,
    private readonly inodes: InodeTable,
    private readonly kernel: KernelNotifier,
  ) {
    vfs.onChange((change) => this.note(change));
  }

  private note(change?: PathChange): void {
    if (this.dirty !== 'all') {
      // Past as many paths as the kernel holds nodes, checking them all costs less.
      if (!change || this.dirty.size >= Math.max(1024, this.inodes.size)) this.dirty = 'all';
      else this.dirty.set(change.path, change.subtree || this.dirty.get(change.path) === true);
    }
    this.schedule();
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

  /** A sweep is scheduled or running. */
  get pending(): boolean {
    return this.running || this.timer !== undefined;
  }

  /** The counters user.vdfs.fuse shows. */
  stats(): { sweeps: number; sweepPending: number; invalidations: number; swept: number } {
    return { sweeps: this.sweeps, sweepPending: this.pending ? 1 : 0, invalidations: this.invalidations, swept: this.swept };
  }

  /**
   * The nodes the changed paths concern: each path's node (and, for a subtree, every node
   * below it) and its folder's node. A changed name the kernel remembers as missing is dropped
   * from its cache on the way.
   */
  private concerned(dirty: Map<string, boolean>): Set<FuseNode> {
    const out = new Set<FuseNode>();
    for (const [path, subtree] of dirty) {
      const { parent, node } = this.inodes.atPath(path);
      if (parent) out.add(parent);
      // A name the kernel was told does not exist, which the index now may have.
      const name = path.slice(path.lastIndexOf('/') + 1);
      if (parent && !node && this.inodes.negatives.forget(parent.id, name)) this.dropEntry(parent.id, name);
      if (!node) continue;
      out.add(node);
      if (subtree) for (const below of this.inodes.below(node)) out.add(below);
    }
    return out;
  }

  /** One pass over the nodes; never throws. */
  async sweep(): Promise<void> {
    this.running = true;
    this.sweeps++;
    const started = Date.now();
    const dirty = this.dirty;
    this.dirty = new Map();
    try {
      let i = 0;
      for (const node of dirty === 'all' ? [...this.inodes.nodes()] : this.concerned(dirty)) {
        if (this.stopped) return;
        this.swept++;
        if (++i % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
        const last = node.last;
        // A node without attributes kept (a file the kernel only got from a listing) is checked
        // when its own path changed: then it is invalidated whatever it was.
        if ((!last && dirty === 'all') || !node.parent || node.unlinked) continue;
        try {
          const a = await this.vfs.getattr(this.inodes.pathOf(node));
          if (!last || a.etag !== last.etag || a.size !== last.size || a.mtimeMs !== last.mtimeMs || a.mode !== last.mode || a.type !== last.type) {
            if (a.type !== (last?.type ?? node.type)) {
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
      if (dirty === 'all') await this.sweepNegatives();
    } finally {
      this.lastDurationMs = Date.now() - started;
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  /** INVAL_ENTRY of a name the kernel may remember as missing. */
  private dropEntry(parent: number, name: string): void {
    this.invalidations++;
    this.kernel.invalidateEntry(parent, name);
  }

  /** A full sweep's check of the names the kernel may remember as missing: those the index now has are dropped. */
  private async sweepNegatives(): Promise<void> {
    let i = 0;
    for (const n of this.inodes.negatives.live()) {
      if (this.stopped) return;
      if (++i % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
      const parent = this.inodes.find(n.parent);
      if (!parent) {
        this.inodes.negatives.forget(n.parent, n.name); // forgotten by the kernel with its names
        continue;
      }
      this.swept++;
      try {
        await this.vfs.getattr(this.inodes.childPath(parent, n.name));
        if (this.inodes.negatives.forget(n.parent, n.name)) this.dropEntry(n.parent, n.name);
      } catch {
        /* still missing, or unreadable: the kernel's answer stands until its timeout */
      }
    }
  }
}
