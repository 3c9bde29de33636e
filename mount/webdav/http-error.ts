import { isFsError } from '../../core/fs-error';
import { STATUS_FOR_CODE } from './status';

/**
 * An error that already knows its HTTP answer. `condition` is an RFC 4918 precondition
 * or postcondition element name in the DAV: namespace (e.g. `propfind-finite-depth`),
 * sent as the body `<D:error><D:condition/></D:error>`; `conditionXml` replaces the
 * element's inner content when it needs children (lock-token-submitted hrefs).
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly condition?: string,
    readonly conditionXml?: string,
    readonly headers: Record<string, string | string[]> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Maps anything thrown by a handler to an HTTP status (FsError through the status table). */
export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (isFsError(err)) return STATUS_FOR_CODE[err.code];
  return 500;
}
