import { FsError } from '../../core/fs-error';
import { isRetryableEio, networkFailure, withRetryFor, type FailureKind, type RetryPolicy } from '../../core/retry';

export { retryableEio, type RetryPolicy } from '../../core/retry';

export const DEFAULT_RETRY: RetryPolicy = { budgetMs: 5000, baseDelayMs: 100, maxDelayMs: 1000, refusedBudgetMs: 600 };

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** Classifies anything the SDK (or a body stream) throws. */
function classify(err: unknown): FailureKind {
  if (err instanceof FsError) return err.code === 'EHOSTDOWN' ? 'network' : isRetryableEio(err) ? 'network' : 'fatal';
  const e = err as { code?: string; name?: string; message?: string; $retryable?: unknown };
  const net = networkFailure(e?.code);
  if (net) return net;
  if (e?.name === 'TimeoutError' || e?.name === 'RequestTimeout' || (e?.name === 'AbortError' && !(e as { $userAbort?: boolean }).$userAbort)) return 'network';
  const s = status(err);
  if (s === 429 || s === 503 || e?.name === 'SlowDown' || e?.name === 'Throttling' || e?.name === 'ThrottlingException') return 'throttled';
  if (s === 500 || s === 502 || s === 504 || e?.name === 'InternalError') return 'server';
  // No HTTP status at all: the request never got an answer (socket hang up, aborted body).
  if (s === undefined && /socket hang up|aborted|premature|timed? ?out|ECONNRESET|terminated/i.test(e?.message ?? '')) return 'network';
  return 'fatal';
}

/** Retries S3 calls (503 SlowDown, 429, 5xx, resets, timeouts, truncated bodies); see withRetryFor. Throws FsError only. */
export function withRetry<T>(what: string, policy: RetryPolicy, attempt: () => Promise<T>, map: (err: unknown) => FsError, signal?: AbortSignal): Promise<T> {
  return withRetryFor(S3_SERVICE, what, policy, attempt, map, signal);
}

const S3_SERVICE = { name: 'S3 endpoint', classify, message: (err: unknown) => (err as Error)?.message ?? String(err) };
