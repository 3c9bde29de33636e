import type { Logger } from 'pino';
import type { HashPool } from '../../index/hash-pool';
import type { DiskStats } from './disk-stats';
import type { HandleTable } from './handles';
import { movedPath, type LiveSizes, type Move } from './live-sizes';
import type { ProviderPool } from './replicas';
import type { Resolver } from './resolver';
import type { UploadQueue } from './upload-queue';
import type { VfsHome } from './vfs-home';
import type { Location } from '../../index/locations';
import type { ProviderFeatures } from '../../core/provider';
import { splitVirtual } from './namespace';
import { isStaged } from './targets';

/**
 * The state of the VFS its writers share (VfsCore is one): the writers (local, staged, remote)
 * take this instead of VfsCore, so the core and its writers do not import each other.
 */
export interface WriterHost {
  readonly home: VfsHome;
  readonly resolver: Resolver;
  readonly providers: ProviderPool;
  readonly handles: HandleTable;
  /** Sizes of files open for writing, shared by every writer. */
  readonly live: LiveSizes;
  /** Owners, link counts and times of local entries, as their disk last said. */
  readonly disk: DiskStats;
  readonly hashPool: HashPool;
  /** The daemon's logger (undefined in-process without one): for failures handled off the caller's path. */
  readonly log: Logger | undefined;
  /** What the location's provider supports (nothing for a kind this build cannot open); never throws. */
  featuresOf(loc: Location): ProviderFeatures;
  /** The staged writer's upload queue, and dropping a path's staged state (the local writer replaces it). */
  readonly staged: { readonly queue: UploadQueue; detach(path: string): void };
}

/**
 * Names were renamed (`[from, to]` each, a whole subtree for a directory; several at once for an
 * exchange): the files open under them follow, as descriptors follow an inode on a disk, so their
 * later writes and closes land at the new name.
 */
export function moveOpenFiles(host: Pick<WriterHost, 'handles' | 'live'>, ...moves: Move[]): void {
  for (const [, h] of host.handles.all()) {
    if (h.kind === 'blob') continue;
    const np = movedPath(h.vpath, moves);
    if (np) {
      h.vpath = np;
      h.rel = splitVirtual(np).rel;
    }
  }
  host.live.moved(moves);
}

/** What a writer asks of the upload queue about a location's paths. */
export type StagedPaths = Pick<UploadQueue, 'hold' | 'pending' | 'hasUnder' | 'cancel' | 'move'>;

/** A location that stages nothing has no queue rows: nothing pending, nothing to hold, cancel or move. */
const NOTHING_STAGED: StagedPaths = {
  hold: () => Promise.resolve(() => undefined),
  pending: () => undefined,
  hasUnder: () => false,
  cancel: () => Promise.resolve(),
  move: () => undefined,
};

/**
 * The upload queue for a location that stages its writes (cloud, write-back), else one that
 * answers without SQLite: a location's kind and write-back never change, so a disk written
 * through never has rows, and a rename there asked the queue four queries (~0.15 ms of it).
 */
export function stagedPaths(host: Pick<WriterHost, 'staged' | 'featuresOf'>, loc: Location): StagedPaths {
  return isStaged(loc, host.featuresOf(loc)) ? host.staged.queue : NOTHING_STAGED;
}
