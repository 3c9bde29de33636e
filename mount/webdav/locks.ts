import { randomUUID } from 'node:crypto';
import { HttpError } from './http-error';
import { hrefFor, isWithin } from './paths';

export type LockScope = 'exclusive' | 'shared';

/** One granted write lock. Plain data; LockManager throws HttpError 423/503 when granting fails. */
export interface Lock {
  token: string;
  /** Virtual path the lock was taken on (its lock root). */
  root: string;
  depth: 0 | 'infinity';
  scope: LockScope;
  /** The client's `<D:owner>` content as XML markup ('' when none). */
  owner: string;
  timeoutSec: number;
  expiresAt: number;
  /** Who took it (`user@address`), for the per-principal cap. */
  principal: string;
  /** A depth-infinity lock on a whole location never lives past this, refreshed or not. */
  notAfter: number;
}

/** Caps on lock timeouts and counts. Plain data: nothing throws. */
export interface LockLimits {
  /** Longest timeout granted; longer or Infinite requests are cut to this. */
  maxTimeoutSec: number;
  maxPerResource: number;
  maxTotal: number;
  /** Locks one principal may hold at once (default 500): filling it leaves room for everyone else. */
  maxPerPrincipal?: number;
}

export const DEFAULT_LOCK_LIMITS: LockLimits = { maxTimeoutSec: 3600, maxPerResource: 64, maxTotal: 10_000, maxPerPrincipal: 500 };

/** `/name`: a location root (or the namespace root), where a depth-infinity lock covers a whole location. */
function isLocationRoot(path: string): boolean {
  return path.lastIndexOf('/') === 0;
}

/**
 * WebDAV write locks, in memory. Locks are advisory state of this server process (as in
 * Apache's mod_dav with a lock DB per server): they vanish on restart, which clients
 * survive by re-locking. Expired locks are dropped lazily.
 */
export class LockManager {
  private readonly locks = new Map<string, Lock>();

  constructor(
    readonly limits: LockLimits = DEFAULT_LOCK_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    this.expire();
    return this.locks.size;
  }

  /** `Timeout: Second-N, Infinite` → seconds, capped at limits.maxTimeoutSec. */
  parseTimeout(header: string | undefined): number {
    const max = this.limits.maxTimeoutSec;
    if (!header) return max;
    for (const part of header.split(',')) {
      const p = part.trim();
      if (/^infinite$/i.test(p)) return max;
      const m = /^second-(\d+)$/i.exec(p);
      if (m) return Math.max(1, Math.min(max, Number(m[1])));
    }
    return max;
  }

  private expire(): void {
    const t = this.now();
    for (const [k, l] of this.locks) if (l.expiresAt <= t) this.locks.delete(k);
  }

  get(token: string): Lock | undefined {
    this.expire();
    return this.locks.get(token);
  }

  /** Locks whose scope includes `path`: on it, or depth-infinity on an ancestor. */
  covering(path: string): Lock[] {
    this.expire();
    const out: Lock[] = [];
    for (const l of this.locks.values()) {
      if (l.root === path || (l.depth === 'infinity' && isWithin(path, l.root))) out.push(l);
    }
    return out;
  }

  /** Locks rooted at `path` or anywhere below it. */
  within(path: string): Lock[] {
    this.expire();
    return [...this.locks.values()].filter((l) => isWithin(l.root, path));
  }

  /**
   * Grants a new lock. Throws HttpError 423 when it conflicts with an existing lock
   * (any exclusive, or an exclusive request against any lock, on the path, an
   * ancestor's infinity lock, or, for depth infinity, anything below), and 503 when
   * the per-resource, per-principal or total cap is reached. A depth-infinity lock on a
   * location root expires after `maxTimeoutSec` however often it is refreshed.
   */
  create(root: string, depth: 0 | 'infinity', scope: LockScope, owner: string, timeoutSec: number, principal = ''): Lock {
    this.expire();
    const related = [...this.covering(root), ...(depth === 'infinity' ? this.within(root).filter((l) => l.root !== root) : [])];
    const conflict = related.find((l) => l.scope === 'exclusive' || scope === 'exclusive');
    if (conflict) throw new HttpError(423, `${root} is locked`, 'no-conflicting-lock', `<D:href>${hrefFor(conflict.root, false)}</D:href>`);
    if (this.locks.size >= this.limits.maxTotal) throw new HttpError(503, 'too many locks on this server', undefined, undefined, { 'Retry-After': '60' });
    if ([...this.locks.values()].filter((l) => l.root === root).length >= this.limits.maxPerResource)
      throw new HttpError(503, `too many locks on ${root}`, undefined, undefined, { 'Retry-After': '60' });
    const perPrincipal = this.limits.maxPerPrincipal ?? Infinity;
    let held = 0;
    for (const l of this.locks.values()) if (l.principal === principal) held++;
    if (held >= perPrincipal) throw new HttpError(503, `you hold ${held} locks already: unlock some first`, undefined, undefined, { 'Retry-After': '60' });
    const t = this.now();
    const timeout = Math.min(timeoutSec, this.limits.maxTimeoutSec);
    const notAfter = depth === 'infinity' && isLocationRoot(root) ? t + this.limits.maxTimeoutSec * 1000 : Infinity;
    const lock: Lock = { token: `opaquelocktoken:${randomUUID()}`, root, depth, scope, owner, timeoutSec: timeout, expiresAt: t + timeout * 1000, principal, notAfter };
    this.locks.set(lock.token, lock);
    return lock;
  }

  /** Extends a lock by `timeoutSec` (capped), never past its `notAfter`. */
  refresh(lock: Lock, timeoutSec: number): void {
    const t = this.now();
    lock.expiresAt = Math.min(lock.notAfter, t + Math.min(timeoutSec, this.limits.maxTimeoutSec) * 1000);
    lock.timeoutSec = Math.max(1, Math.ceil((lock.expiresAt - t) / 1000));
  }

  remove(token: string): boolean {
    return this.locks.delete(token);
  }

  /** Drops every lock rooted at or below `path` (the resources are gone or moved away). */
  removeWithin(path: string): void {
    for (const l of this.within(path)) this.locks.delete(l.token);
  }

  /**
   * Throws HttpError 423 unless every lock that protects `path` (and, with `subtree`,
   * every lock below it) has its token in `tokens`. Shared locks count as satisfied when
   * one of the shared locks is submitted, as RFC 4918 §7 lets any holder write.
   */
  assertCanModify(path: string, tokens: Set<string>, subtree = false): void {
    const relevant = subtree ? [...this.covering(path), ...this.within(path).filter((l) => l.root !== path)] : this.covering(path);
    if (relevant.length === 0) return;
    const groups = new Map<string, Lock[]>();
    for (const l of relevant) groups.set(l.root, [...(groups.get(l.root) ?? []), l]);
    for (const [root, ls] of groups) {
      if (!ls.some((l) => tokens.has(l.token))) {
        throw new HttpError(423, `${root} is locked`, 'lock-token-submitted', `<D:href>${hrefFor(root, false)}</D:href>`);
      }
    }
  }
}
