/**
 * Limits failed pairing attempts per source (an IPv4 address or an IPv6 /64, see sourceKey):
 * a few per minute, so guessing a 128-bit token is hopeless even for a patient attacker (and
 * the log shows it). There is deliberately no global cap: one that strangers can fill lets
 * anyone on the network block every real pairing.
 */
export class PairRateLimit {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly perSource = 5,
    private readonly windowMs = 60_000,
  ) {}

  /** Whether `source` may try now. */
  allowed(source: string): boolean {
    const now = Date.now();
    const mine = (this.failures.get(source) ?? []).filter((t) => now - t < this.windowMs);
    if (mine.length === 0) this.failures.delete(source);
    else this.failures.set(source, mine);
    return mine.length < this.perSource;
  }

  failed(source: string): void {
    const now = Date.now();
    // Bounded memory under a flood from many sources: forget the longest-known one.
    if (!this.failures.has(source) && this.failures.size >= 10_000) this.failures.delete(this.failures.keys().next().value as string);
    this.failures.set(source, [...(this.failures.get(source) ?? []), now].slice(-this.perSource));
  }
}
