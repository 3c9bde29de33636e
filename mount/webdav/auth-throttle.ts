/** Failure counts of one client address, or of all of them together. */
interface Failures {
  count: number;
  last: number;
}

/** Limits of AuthThrottle. Plain data. */
export interface ThrottleLimits {
  /** Failures allowed before any wait is imposed. */
  free: number;
  /** First wait; it doubles with every further failure. */
  baseMs: number;
  maxMs: number;
  /** Failures are forgotten after this long without one. */
  forgetMs: number;
  /** The same for all addresses together: many addresses cannot multiply the guessing rate. */
  globalFree: number;
  maxAddresses: number;
}

export const DEFAULT_THROTTLE: ThrottleLimits = { free: 5, baseMs: 1000, maxMs: 5 * 60_000, forgetMs: 15 * 60_000, globalFree: 100, maxAddresses: 10_000 };

/**
 * Exponential back-off of password guessing, per client address and overall. While an
 * address (or everyone) must wait, its uncached credentials are answered 429 without
 * spending scrypt; credentials already accepted keep working (the cache is checked first),
 * so a guesser sharing an address with a real client cannot lock that client out.
 */
export class AuthThrottle {
  private readonly byAddress = new Map<string, Failures>();
  private readonly all: Failures = { count: 0, last: 0 };

  constructor(
    private readonly limits: ThrottleLimits = DEFAULT_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds `address` must still wait before its next password check (0: go ahead). */
  waitMs(address: string): number {
    const t = this.now();
    const own = this.byAddress.get(address);
    return Math.max(own ? this.wait(own, this.limits.free, t) : 0, this.wait(this.all, this.limits.globalFree, t));
  }

  private wait(f: Failures, free: number, t: number): number {
    if (t - f.last > this.limits.forgetMs) {
      f.count = 0;
      return 0;
    }
    if (f.count < free) return 0;
    const backoff = Math.min(this.limits.maxMs, this.limits.baseMs * 2 ** Math.min(30, f.count - free));
    return Math.max(0, f.last + backoff - t);
  }

  failed(address: string): void {
    const t = this.now();
    let own = this.byAddress.get(address);
    if (!own) {
      if (this.byAddress.size >= this.limits.maxAddresses) this.forgetOld(t);
      own = { count: 0, last: t };
      this.byAddress.set(address, own);
    }
    for (const f of [own, this.all]) {
      if (t - f.last > this.limits.forgetMs) f.count = 0;
      f.count++;
      f.last = t;
    }
  }

  succeeded(address: string): void {
    this.byAddress.delete(address);
  }

  private forgetOld(t: number): void {
    for (const [k, f] of this.byAddress) if (t - f.last > this.limits.forgetMs) this.byAddress.delete(k);
    // Still full: drop the oldest entries (Map keeps insertion order)
    for (const k of this.byAddress.keys()) {
      if (this.byAddress.size < this.limits.maxAddresses) break;
      this.byAddress.delete(k);
    }
  }
}
