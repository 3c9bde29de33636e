import type { FuseNode, InodeTable } from './inode-table';
import type { KernelNotifier } from './invalidator';

/** Nodes the table keeps past its budget before trimming: trims come in batches, not one per lookup. */
const SLACK = 0.1;
/** A trim brings the table down to this share of the budget. */
const LOW_WATER = 0.8;
/** At most one trim per this many ms: names the kernel cannot drop (in use) are not asked about in a loop. */
const MIN_INTERVAL_MS = 200;

/** Default node budget (config `fuse.maxNodes`): ~200 bytes of daemon heap each, ~20 MB. */
export const DEFAULT_MAX_NODES = 100_000;

/**
 * Keeps the FUSE node table near `max` nodes. The kernel holds a node for every name it has
 * cached (a `find` over a million files: a million) and the table holds one per kernel node
 * until the kernel forgets it, so on its own the daemon grows with the part of the tree walked.
 * Past the budget, the oldest nodes without children (the table's insertion order: the ones
 * looked up first) get INVAL_ENTRY: the kernel drops those names from its dentry cache unless
 * they are in use, evicts their inodes and sends FORGET, which prunes them here. Open,
 * unlinked and hard-linked nodes are left alone. A dropped name costs one LOOKUP when it is
 * used again. Never throws.
 */
export class NodeBudget {
  private lastTrim = 0;
  /** Asked about already: a name the kernel keeps (in use) is not asked about again and again. */
  private readonly dropped = new WeakSet<FuseNode>();
  /** Names the kernel was asked to drop (diagnostics). */
  asked = 0;

  constructor(
    private readonly inodes: InodeTable,
    private readonly kernel: Pick<KernelNotifier, 'invalidateEntry'>,
    readonly max: number,
  ) {}

  /** After a request: trims when the table is past its budget. */
  check(): void {
    if (this.inodes.size <= this.max * (1 + SLACK)) return;
    const now = Date.now();
    if (now - this.lastTrim < MIN_INTERVAL_MS) return;
    this.lastTrim = now;
    this.trim(this.inodes.size - Math.floor(this.max * LOW_WATER));
  }

  private trim(want: number): void {
    // From the oldest node on, each time: names the kernel dropped are gone from the table by
    // now (FORGET), so the pass starts near the first names not asked about yet. (An iterator
    // kept across trims would pin the Map's old hash tables, and with them forgotten nodes.)
    for (const n of this.inodes.nodes()) {
      if (want <= 0) return;
      if (!n.parent || n.children || n.unlinked || n.cachedOpens || n.backing || n.aliases?.length || this.dropped.has(n)) continue;
      this.dropped.add(n);
      this.kernel.invalidateEntry(n.parent.id, n.name);
      this.asked++;
      want--;
    }
  }
}
