import type { BigIntStats } from 'node:fs';

/** The parts of an lstat these are taken from (a BigIntStats, or the addon's batched fstatat). */
export type StatFields = Pick<BigIntStats, 'atimeNs' | 'ctimeNs' | 'ino' | 'dev' | 'uid' | 'gid' | 'nlink' | 'size'>;

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

/**
 * Upper bound of remembered entries: beyond it the oldest are forgotten and lstat'ed again when
 * asked. About 80 bytes an entry (52 in the columns below, the rest the id map), so at most
 * ~32 MB. It must exceed the entries a walk touches: a bound below a tree's size made every
 * `find` over it miss every entry (evicted in the order it walks) and lstat the disk again.
 */
export const DISK_STATS_MAX = 400_000;
const FIRST = 1024;

/**
 * lstat results of local entries by index entry id (stable across renames), taken whenever the
 * local writer refreshes an entry, on the first getattr of an entry not seen yet, and for the
 * children of a listed directory. The index keeps type, size, mtime and mode for every kind of
 * location; owners, link counts, atime and ctime only exist on disks, so they are kept here,
 * bounded, in memory: in columns (typed arrays) rather than an object per entry, so that a
 * listing of a 100,000-entry location is answered without the disk for a few MB.
 */
export class DiskStats {
  /** entry id -> slot; the map's order is the eviction order. */
  private readonly slots = new Map<number, number>();
  private free: number[] = [];
  private used = 0;
  private cap = 0;
  private times = new BigInt64Array(0); // atime, ctime per slot
  private ids = new BigUint64Array(0); // ino, dev per slot
  private owners = new Uint32Array(0); // uid, gid, nlink per slot
  private sizes = new Float64Array(0);

  /** Counts every set and delete: what was built from these stats is current while it has not moved. */
  version = 0;
  /** Told of every set and delete, by entry id (one listener: the listings kept by EntryAttrs). */
  onEntryChange?: (entryId: number) => void;

  constructor(private readonly max = DISK_STATS_MAX) {}

  get size(): number {
    return this.slots.size;
  }

  has(entryId: number): boolean {
    return this.slots.has(entryId);
  }

  get(entryId: number): DiskStat | undefined {
    const s = this.slots.get(entryId);
    if (s === undefined) return undefined;
    return {
      atimeNs: this.times[2 * s],
      ctimeNs: this.times[2 * s + 1],
      uid: this.owners[3 * s],
      gid: this.owners[3 * s + 1],
      nlink: this.owners[3 * s + 2],
      size: this.sizes[s],
      ino: this.ids[2 * s],
      dev: this.ids[2 * s + 1],
    };
  }

  set(entryId: number, st: StatFields): void {
    this.version++;
    this.onEntryChange?.(entryId);
    let s = this.slots.get(entryId);
    if (s !== undefined)
      this.slots.delete(entryId); // re-insert: most recent last
    else s = this.allocate();
    this.slots.set(entryId, s);
    this.times[2 * s] = st.atimeNs;
    this.times[2 * s + 1] = st.ctimeNs;
    this.ids[2 * s] = st.ino;
    this.ids[2 * s + 1] = st.dev;
    this.owners[3 * s] = Number(st.uid);
    this.owners[3 * s + 1] = Number(st.gid);
    this.owners[3 * s + 2] = Number(st.nlink);
    this.sizes[s] = Number(st.size);
    if (this.slots.size > this.max) this.delete(this.slots.keys().next().value as number);
  }

  /** Entries whose last lstat was of this disk file (its names, when it has several). */
  sameFile(dev: bigint, ino: bigint): number[] {
    const out: number[] = [];
    for (const [id, s] of this.slots) if (this.ids[2 * s] === ino && this.ids[2 * s + 1] === dev) out.push(id);
    return out;
  }

  delete(entryId: number): void {
    const s = this.slots.get(entryId);
    if (s === undefined) return;
    this.version++;
    this.onEntryChange?.(entryId);
    this.slots.delete(entryId);
    this.free.push(s);
  }

  private allocate(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.cap) this.grow(Math.min(this.max + 1, Math.max(FIRST, this.cap * 2)));
    return this.used++;
  }

  private grow(cap: number): void {
    const times = new BigInt64Array(2 * cap);
    times.set(this.times);
    const ids = new BigUint64Array(2 * cap);
    ids.set(this.ids);
    const owners = new Uint32Array(3 * cap);
    owners.set(this.owners);
    const sizes = new Float64Array(cap);
    sizes.set(this.sizes);
    this.times = times;
    this.ids = ids;
    this.owners = owners;
    this.sizes = sizes;
    this.cap = cap;
  }
}
