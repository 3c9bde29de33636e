/**
 * System and client error codes (Node, undici, smithy) that mean "nothing answers there": the
 * host or port refuses, or the name does not resolve. One set for every remote service (S3,
 * Drive) and for toFsError; core/retry.ts re-exports it.
 */
export const REFUSED_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** Codes that mean "the connection failed mid-way" (reset, timeout, premature close): worth retrying. */
export const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'EPROTO',
  'UND_ERR_CLOSED',
]);
