import type { Logger } from 'pino';

/**
 * Errors that are caught and not passed on, because the caller can go on without the result
 * (a busy index on a timer, a reader that went away) — but never silently: each one is
 * logged where it happens and counted here by what failed. The counts are process-wide, like
 * a metrics registry, and a daemon publishes them for `vdfs status --json` (`swallowed`).
 */
const counts = new Map<string, number>();

/**
 * Logs `err` at `level` with `fields` under the message `what failed: reason`, and counts it
 * under `what`. Never throws.
 */
export function noteSwallowed(
  log: Logger | undefined,
  what: string,
  err: unknown,
  fields: Record<string, unknown> = {},
  level: 'debug' | 'info' | 'warn' | 'error' = 'warn',
): void {
  counts.set(what, (counts.get(what) ?? 0) + 1);
  const code = (err as { code?: unknown } | undefined)?.code;
  const reason = (err as Error | undefined)?.message ?? String(err);
  try {
    log?.[level]({ ...fields, code: typeof code === 'string' ? code : undefined, err: reason }, `${what} failed: ${reason}`);
  } catch {
    // a logger that throws (closed destination) must not turn a noted error into a crash
  }
}

/** The counts so far, by what failed (a copy). */
export function swallowedCounts(): Record<string, number> {
  return Object.fromEntries(counts);
}
