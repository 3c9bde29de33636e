/**
 * Keyed single-flight: concurrent `run(key, work)` calls for the same key share one
 * execution of `work` and settle with its result or its error. Once settled, the key is
 * forgotten, so a failure never poisons later calls. Rejections are whatever `work` throws.
 */
export class SingleFlight<T> {
  private readonly flights = new Map<string, Promise<T>>();

  /** Number of keys with work in flight. */
  get size(): number {
    return this.flights.size;
  }

  /** True when `key` has work in flight (the next `run` for it will join). */
  has(key: string): boolean {
    return this.flights.has(key);
  }

  /** Runs `work` for `key`, or joins the run already in flight. Rejects with `work`'s error. */
  run(key: string, work: () => Promise<T>): Promise<T> {
    const existing = this.flights.get(key);
    if (existing) return existing;
    const p = (async () => {
      try {
        return await work();
      } finally {
        this.flights.delete(key);
      }
    })();
    this.flights.set(key, p);
    return p;
  }

  /** Waits for everything in flight to settle (errors ignored). Never rejects. */
  async drain(): Promise<void> {
    while (this.flights.size > 0) await Promise.allSettled([...this.flights.values()]);
  }
}
