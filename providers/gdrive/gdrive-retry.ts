import { setTimeout as sleep } from 'node:timers/promises';
import { FsError } from '../fs-error';

/** How long a call may keep retrying. */
export interface RetryPolicy {
  /** No new attempt starts after this many ms since the first one. */
  budgetMs: number;
  /** First backoff; doubled per retry up to `maxDelayMs`, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A refused connection means nothing listens there: give up after this long. */
  refusedBudgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { budgetMs: 8000, baseDelayMs: 150, maxDelayMs: 2000, refusedBudgetMs: 600 };

type Kind = 'refused' | 'network' | 'throttled' | 'server' | 'fatal';

const REFUSED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const NETWORK = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'EPROTO', 'UND_ERR_CLOSED']);
const THROTTLE_REASONS = new Set(['userRateLimitExceeded', 'rateLimitExceeded']);

interface ApiErr {
  status?: number; code?: string | number; message?: string; name?: string;
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
  } catch { return {}; }
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
  return !!c && REFUSED.has(c);
}

function classify(err: unknown): Kind {
  if (err instanceof FsError) return (err as { retryable?: boolean }).retryable ? 'network' : 'fatal';
  const c = sysCode(err);
  if (c && REFUSED.has(c)) return 'refused';
  if (c && NETWORK.has(c)) return 'network';
  const s = httpStatus(err);
  if (s === 429) return 'throttled';
  if (s === 403 && THROTTLE_REASONS.has(apiReason(err).reason ?? '')) return 'throttled';
  if (s !== undefined && s >= 500) return 'server';
  if (s === undefined && /fetch failed|socket hang up|aborted|premature|timed? ?out|ECONNRESET|terminated|other side closed/i.test((err as ApiErr)?.message ?? '')) return 'network';
  return 'fatal';
}

/** An EIO the retry loop may try again (a truncated body). */
export function retryableEio(message: string): FsError {
  return Object.assign(new FsError('EIO', message), { retryable: true as const });
}

/**
 * Runs `attempt` until it succeeds, fails in a way that will not change, or the budget is
 * spent. 429, 403 userRateLimitExceeded/rateLimitExceeded, 5xx, resets and truncated bodies
 * are retried with jittered exponential backoff. Gives up with EHOSTDOWN when the last
 * failure had no HTTP answer, EIO with Drive's words otherwise; anything else goes through
 * `map`. Throws FsError only.
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
      const wait = Math.random() * delay;
      if (elapsed + wait > (kind === 'refused' ? policy.refusedBudgetMs : policy.budgetMs)) {
        const msg = apiReason(err).message ?? (err as Error)?.message ?? String(err);
        const secs = (elapsed / 1000).toFixed(1);
        if (kind === 'refused' || kind === 'network') throw new FsError('EHOSTDOWN', `${what}: Google Drive unreachable after ${n} attempts in ${secs} s (${msg})`, err);
        throw new FsError('EIO', `${what}: Google Drive still failing after ${n} attempts in ${secs} s (${kind === 'throttled' ? 'rate limited: ' : ''}${msg})`, err);
      }
      await sleep(wait);
      delay = Math.min(delay * 2, policy.maxDelayMs);
    }
  }
}
