import type { BigIntStats } from 'node:fs';

/** What the index does not keep about a local file, as its disk last reported it. */
export interface DiskStat {
  atimeNs: bigint;
  ctimeNs: bigint;
  uid: number;
  gid: number;
  nlink: number;
  /** Only used for directories (the index keeps 0 for them). */
  size: number;
  /** The disk's inode number and device: names sharing both are hard links of one file. */
  ino: bigint;
  dev: bigint;
}

/** Upper bound of remembered entries: beyond it the oldest are forgotten and lstat'ed again when asked. */
const MAX = 100_000;

/**
 * lstat results of local entries by index entry id (stable across renames), taken whenever the
 * local writer refreshes an entry and on the first getattr of an entry not seen yet. The
 * index keeps type, size, mtime and mode for every kind of location; owners, link counts,
 * atime and ctime only exist on disks, so they are kept here, bounded, in memory.
 */
export class DiskStats {
  private readonly byEntry = new Map<number, DiskStat>();

  get(entryId: number): DiskStat | undefined {
    return this.byEntry.get(entryId);
  }

  set(entryId: number, st: BigIntStats): void {
    this.byEntry.delete(entryId); // re-insert: the map's order is the eviction order
    this.byEntry.set(entryId, {
      atimeNs: st.atimeNs,
      ctimeNs: st.ctimeNs,
      uid: Number(st.uid),
      gid: Number(st.gid),
      nlink: Number(st.nlink),
      size: Number(st.size),
      ino: st.ino,
      dev: st.dev,
    });
    if (this.byEntry.size > MAX) this.byEntry.delete(this.byEntry.keys().next().value as number);
  }

  /** Entries whose last lstat was of this disk file (its names, when it has several). */
  sameFile(dev: bigint, ino: bigint): number[] {
    const out: number[] = [];
    for (const [id, d] of this.byEntry) if (d.ino === ino && d.dev === dev) out.push(id);
    return out;
  }

  delete(entryId: number): void {
    this.byEntry.delete(entryId);
  }
}
