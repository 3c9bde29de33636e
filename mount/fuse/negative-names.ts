/**
 * The names the kernel was told do not exist (a LOOKUP answered with a negative entry) and may
 * still remember so: for the invalidator, which drops such a name from the kernel's cache once
 * the index has it (INVAL_ENTRY). A change of one known path drops its name when it is here; a
 * change whose extent is not known (a rescan, another process's commit, a peer's feed) looks up
 * again each name here whose time has not run out.
 * Only names whose time has not run out are kept, and at most MAX_NAMES: past that the oldest
 * is forgotten, and the kernel then keeps that name at most until its negative timeout.
 */
export interface NegativeName {
  parent: number;
  name: string;
  /** Until when (ms since the epoch) the kernel may answer it from its cache. */
  until: number;
}

/** ~150 bytes each: at most ~2.5 MB. */
const MAX_NAMES = 16_384;

export class NegativeNames {
  private readonly names = new Map<string, NegativeName>();

  constructor(private readonly max = MAX_NAMES) {}

  /** The kernel may now remember for `ttlMs` that `parent` holds no `name`. */
  note(parent: number, name: string, ttlMs: number): void {
    const now = Date.now();
    // The map's order is the order they run out (one timeout for all): those that ran out are first.
    for (const [k, n] of this.names) {
      if (n.until > now && this.names.size < this.max) break;
      this.names.delete(k);
    }
    const key = `${parent}/${name}`;
    this.names.delete(key); // re-inserted last
    this.names.set(key, { parent, name, until: now + ttlMs });
  }

  /** The kernel no longer remembers it (dropped, or the name now exists there); false when it was not here. */
  forget(parent: number, name: string): boolean {
    return this.names.delete(`${parent}/${name}`);
  }

  /** The names whose time has not run out (those that have are forgotten on the way). */
  live(): NegativeName[] {
    this.prune();
    return [...this.names.values()];
  }

  /** Forgets the names whose time ran out (an idle daemon keeps none of a past burst). */
  prune(): void {
    const now = Date.now();
    for (const [key, n] of this.names) if (n.until <= now) this.names.delete(key);
  }

  get size(): number {
    return this.names.size;
  }
}
