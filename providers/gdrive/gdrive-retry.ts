import { FsError } from '../../core/fs-error';
import { isRetryableEio, networkFailure, REFUSED_CODES, withRetryFor, type FailureKind, type RetryPolicy } from '../../core/retry';

export { retryableEio, type RetryPolicy } from '../../core/retry';

export const DEFAULT_RETRY: RetryPolicy = { budgetMs: 8000, baseDelayMs: 150, maxDelayMs: 2000, refusedBudgetMs: 600 };

const THROTTLE_REASONS = new Set(['userRateLimitExceeded', 'rateLimitExceeded']);

interface ApiErr {
  status?: number;
  code?: string | number;
  message?: string;
  name?: string;
  response?: { status?: number; data?: unknown };
  cause?: { code?: string; cause?: { code?: string } };
}

/** The HTTP status of a failed call, when there was an answer. */
export function httpStatus(err: unknown): number | undefined {
  const e = err as ApiErr;
  return e?.response?.status ?? (typeof e?.status === 'number' ? e.status : undefined);
}

/** Drive's error reason (`userRateLimitExceeded`, `notFound`, ...) from the JSON body, whatever form gaxios left it in. */
export function apiReason(err: unknown): { reason?: string; message?: string } {
  let data = (err as ApiErr)?.response?.data;
  try {
    if (data instanceof ArrayBuffer) data = Buffer.from(data).toString('utf8');
    if (Buffer.isBuffer(data)) data = data.toString('utf8');
    if (typeof data === 'string') data = JSON.parse(data);
  } catch {
    return {};
  }
  const e = (data as { error?: { message?: string; errors?: { reason?: string }[] } } | undefined)?.error;
  return { reason: e?.errors?.[0]?.reason, message: e?.message };
}

function sysCode(err: unknown): string | undefined {
  const e = err as ApiErr;
  const c = [e?.code, e?.cause?.code, e?.cause?.cause?.code].find((x) => typeof x === 'string');
  return c as string | undefined;
}

/** Whether the failure got no answer because nothing listens (refused, unknown host). */
export function isUnreachable(err: unknown): boolean {
  const c = sysCode(err);
  return !!c && REFUSED_CODES.has(c);
}

function classify(err: unknown): FailureKind {
  if (err instanceof FsError) return isRetryableEio(err) ? 'network' : 'fatal';
  const net = networkFailure(sysCode(err));
  if (net) return net;
  if ((err as ApiErr)?.name === 'TimeoutError') return 'network'; // a direct download's connect or idle timeout (core/http-get.ts)
  const s = httpStatus(err);
  if (s === 429) return 'throttled';
  if (s === 403 && THROTTLE_REASONS.has(apiReason(err).reason ?? '')) return 'throttled';
  if (s !== undefined && s >= 500) return 'server';
  if (s === undefined && /fetch failed|socket hang up|aborted|premature|timed? ?out|ECONNRESET|terminated|other side closed/i.test((err as ApiErr)?.message ?? ''))
    return 'network';
  return 'fatal';
}

/** Retries Drive calls (429, 403 rate limits, 5xx, resets, truncated bodies); see withRetryFor. Throws FsError only. */
export function withRetry<T>(what: string, policy: RetryPolicy, attempt: () => Promise<T>, map: (err: unknown) => FsError, signal?: AbortSignal): Promise<T> {
  return withRetryFor(DRIVE_SERVICE, what, policy, attempt, map, signal);
}

const DRIVE_SERVICE = { name: 'Google Drive', classify, message: (err: unknown) => apiReason(err).message ?? (err as Error)?.message ?? String(err) };
