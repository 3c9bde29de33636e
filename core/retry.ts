import { setTimeout as sleep } from 'node:timers/promises';
import { FsError } from './fs-error';
import { NETWORK_CODES, REFUSED_CODES } from './net-codes';

export { NETWORK_CODES, REFUSED_CODES } from './net-codes';

/** How long a call to a remote service may keep retrying. */
export interface RetryPolicy {
  /** No new attempt starts after this many ms since the first one (a few seconds: callers wait). */
  budgetMs: number;
  /** First backoff; each retry doubles it up to `maxDelayMs`, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A refused connection means "nothing listens there": give up after this long, not the full budget. */
  refusedBudgetMs: number;
}

/** 'refused' or 'network' for a code in REFUSED_CODES / NETWORK_CODES, else undefined. */
export function networkFailure(code: string | undefined): 'refused' | 'network' | undefined {
  if (!code) return undefined;
  return REFUSED_CODES.has(code) ? 'refused' : NETWORK_CODES.has(code) ? 'network' : undefined;
}

/** How a failure should be treated: retried (with which budget), or passed through. */
export type FailureKind = 'refused' | 'network' | 'throttled' | 'server' | 'fatal';

/** An EIO the retry loop may try again (a truncated body, a length mismatch). */
export interface RetryableError extends FsError {
  retryable: true;
}

export function retryableEio(message: string): RetryableError {
  return Object.assign(new FsError('EIO', message), { retryable: true as const });
}

export function isRetryableEio(err: unknown): boolean {
  return err instanceof FsError && err.code === 'EIO' && (err as Partial<RetryableError>).retryable === true;
}

/** What a service's retry loop needs to know about it. */
export interface RetryService {
  /** For messages: "S3", "Google Drive". */
  name: string;
  classify(err: unknown): FailureKind;
  /** The service's own words for a failure. */
  message(err: unknown): string;
}

/**
 * Runs `attempt` until it succeeds, a non-retryable error comes back, or the budget is spent,
 * with jittered exponential backoff. Gives up with EHOSTDOWN when the last failure got no
 * answer at all (unreachable), EIO with the service's words otherwise; non-retryable errors
 * go through `map`. Throws FsError only.
 */
export async function withRetryFor<T>(
  service: RetryService,
  what: string,
  policy: RetryPolicy,
  attempt: () => Promise<T>,
  map: (err: unknown) => FsError,
  signal?: AbortSignal,
): Promise<T> {
  const started = Date.now();
  let delay = policy.baseDelayMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const kind = service.classify(err);
      if (kind === 'fatal' || signal?.aborted) throw map(err);
      const elapsed = Date.now() - started;
      const wait = Math.random() * delay;
      if (elapsed + wait > (kind === 'refused' ? policy.refusedBudgetMs : policy.budgetMs)) {
        const msg = service.message(err);
        const secs = (elapsed / 1000).toFixed(1);
        if (kind === 'refused' || kind === 'network') throw new FsError('EHOSTDOWN', `${what}: ${service.name} unreachable after ${n} attempts in ${secs} s (${msg})`, err);
        throw new FsError('EIO', `${what}: ${service.name} still failing after ${n} attempts in ${secs} s (${kind === 'throttled' ? 'throttled: ' : ''}${msg})`, err);
      }
      await sleep(wait);
      delay = Math.min(delay * 2, policy.maxDelayMs);
    }
  }
}
