import { toFsError } from '../core/fs-error';
import type { DirListing } from './dir-list';
import type { HashPool } from './hash-pool';

/** A directory to list: its index id, where it is, and the inode its parent's listing saw. */
export interface WalkDir {
  id: number;
  abs: string;
  rel: string;
  ino?: string;
}

/** Directory listings asked of the pool at once (each one is a whole directory in memory). */
const WALK_INFLIGHT = 8;

/**
 * The walk stage: lists directories on the pool, several at once, and hands each listing to
 * `onListing` on the main thread as it arrives (which may `add` sub-directories). Directories
 * found and not listed yet wait here, last in first out: depth-first keeps this small. None
 * is listed while `mayList()` says no (the hash backlog is full); call `pump` when it may
 * again. `run` resolves once every directory is listed, or rejects with what `onListing`
 * threw; a directory that cannot be listed goes to `onUnreadable` and the walk goes on.
 */
export class TreeWalk {
  private readonly waiting: WalkDir[] = [];
  private active = 0;
  private failure: unknown;
  private walked: (() => void) | undefined;

  constructor(
    private readonly pool: HashPool,
    private readonly onListing: (dir: WalkDir, l: DirListing) => void,
    private readonly onUnreadable: (dir: WalkDir, message: string) => void,
    private readonly mayList: () => boolean,
  ) {}

  add(dir: WalkDir): void {
    this.waiting.push(dir);
  }

  async run(root: WalkDir): Promise<void> {
    const done = new Promise<void>((r) => (this.walked = r));
    this.add(root);
    this.pump();
    await done;
    if (this.failure !== undefined) throw this.failure;
  }

  pump(): void {
    // After a failure nothing more is listed: the walk ends once the listings under way are back.
    const failed = this.failure !== undefined;
    while (!failed && this.active < WALK_INFLIGHT && this.waiting.length > 0 && this.mayList()) this.list(this.waiting.pop()!);
    if (this.active === 0 && (this.waiting.length === 0 || failed)) this.walked?.();
  }

  private list(dir: WalkDir): void {
    this.active++;
    this.pool
      .list(dir.abs, dir.ino)
      .then(
        (l) => {
          if (this.failure === undefined) this.onListing(dir, l);
        },
        // Keep what was indexed: an unreadable directory is not an empty one.
        (err) => {
          if (this.failure === undefined) this.onUnreadable(dir, `cannot list directory: ${toFsError(err, 'readdir').message}`);
        },
      )
      .catch((err) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.active--;
        this.pump();
      });
  }
}
