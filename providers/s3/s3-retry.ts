import { setTimeout as sleep } from 'node:timers/promises';
import { FsError } from '../fs-error';

/** How long a call may keep retrying. */
export interface RetryPolicy {
  /** No new attempt starts after this many ms since the first one (a few seconds: callers wait). */
  budgetMs: number;
  /** First backoff; each retry doubles it up to `maxDelayMs`, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A refused connection means "nothing listens there": give up after this long, not the full budget. */
  refusedBudgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { budgetMs: 5000, baseDelayMs: 100, maxDelayMs: 1000, refusedBudgetMs: 600 };

type Kind = 'refused' | 'network' | 'throttled' | 'server' | 'fatal';

// Node/undici/smithy spell "the network failed" in several ways.
const REFUSED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const NETWORK = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'EPROTO']);

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** Classifies anything the SDK (or a body stream) throws. */
function classify(err: unknown): Kind {
  if (err instanceof FsError) return err.code === 'EHOSTDOWN' ? 'network' : err.code === 'EIO' && (err as RetryableError).retryable ? 'network' : 'fatal';
  const e = err as { code?: string; name?: string; message?: string; $retryable?: unknown };
  if (e?.code && REFUSED.has(e.code)) return 'refused';
  if (e?.code && NETWORK.has(e.code)) return 'network';
  if (e?.name === 'TimeoutError' || e?.name === 'RequestTimeout' || e?.name === 'AbortError' && !(e as { $userAbort?: boolean }).$userAbort) return 'network';
  const s = status(err);
  if (s === 429 || s === 503 || e?.name === 'SlowDown' || e?.name === 'Throttling' || e?.name === 'ThrottlingException') return 'throttled';
  if (s === 500 || s === 502 || s === 504 || e?.name === 'InternalError') return 'server';
  // No HTTP status at all: the request never got an answer (socket hang up, aborted body).
  if (s === undefined && /socket hang up|aborted|premature|timed? ?out|ECONNRESET|terminated/i.test(e?.message ?? '')) return 'network';
  return 'fatal';
}

/** An EIO the retry loop may try again (a truncated body, a length mismatch). */
export interface RetryableError extends FsError { retryable: true }

export function retryableEio(message: string): RetryableError {
  return Object.assign(new FsError('EIO', message), { retryable: true as const });
}

/**
 * Runs `attempt` until it succeeds, a non-retryable error comes back, or the budget is spent.
 * Throttling (503 SlowDown, 429), 5xx, resets, timeouts and truncated bodies are retried
 * with jittered exponential backoff. Gives up with EHOSTDOWN when the last failure got no
 * HTTP answer at all (the service is unreachable), EIO with the service's words otherwise;
 * non-retryable errors are passed through `map`. Throws FsError only.
 */
export async function withRetry<T>(what: string, policy: RetryPolicy, attempt: () => Promise<T>, map: (err: unknown) => FsError, signal?: AbortSignal): Promise<T> {
  const started = Date.now();
  let delay = policy.baseDelayMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const kind = classify(err);
      if (kind === 'fatal' || signal?.aborted) throw map(err);
      const elapsed = Date.now() - started;
      const budget = kind === 'refused' ? policy.refusedBudgetMs : policy.budgetMs;
      const wait = Math.random() * delay;
      if (elapsed + wait > budget) {
        const msg = (err as Error)?.message ?? String(err);
        const secs = (elapsed / 1000).toFixed(1);
        if (kind === 'refused' || kind === 'network') throw new FsError('EHOSTDOWN', `${what}: S3 endpoint unreachable after ${n} attempts in ${secs} s (${msg})`, err);
        throw new FsError('EIO', `${what}: S3 still failing after ${n} attempts in ${secs} s (${kind === 'throttled' ? 'throttled: ' : ''}${msg})`, err);
      }
      await sleep(wait);
      delay = Math.min(delay * 2, policy.maxDelayMs);
    }
  }
}
