import { etagOf } from './etag';
import type { IncomingMessage } from 'node:http';
import type { Attr } from '../vfs/types';
import { HttpError } from './http-error';

function etagList(h: string): string[] {
  return h
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function strongEq(a: string, b: string): boolean {
  return !a.startsWith('W/') && !b.startsWith('W/') && a === b;
}

function weakEq(a: string, b: string): boolean {
  return a.replace(/^W\//, '') === b.replace(/^W\//, '');
}

/**
 * RFC 9110 §13 preconditions, in its evaluation order. `attr` is null when the target
 * does not exist. Returns 'not-modified' when a GET/HEAD should answer 304; throws
 * HttpError 412 when a precondition fails.
 */
export function checkPreconditions(req: IncomingMessage, attr: Attr | null, safe: boolean): 'not-modified' | undefined {
  const ifMatch = req.headers['if-match'];
  if (ifMatch !== undefined) {
    const ok = attr !== null && (ifMatch.trim() === '*' || etagList(ifMatch).some((e) => strongEq(e, etagOf(attr))));
    if (!ok) throw new HttpError(412, 'If-Match failed');
  } else {
    const ius = req.headers['if-unmodified-since'];
    if (ius !== undefined && attr !== null) {
      const t = Date.parse(ius);
      if (!Number.isNaN(t) && Math.floor(attr.mtimeMs / 1000) * 1000 > t) throw new HttpError(412, 'If-Unmodified-Since failed');
    }
  }
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) {
    const match = attr !== null && (inm.trim() === '*' || etagList(inm).some((e) => weakEq(e, etagOf(attr))));
    if (match) {
      if (safe) return 'not-modified';
      throw new HttpError(412, 'If-None-Match failed');
    }
  } else if (safe) {
    const ims = req.headers['if-modified-since'];
    if (ims !== undefined && attr !== null) {
      const t = Date.parse(ims);
      if (!Number.isNaN(t) && Math.floor(attr.mtimeMs / 1000) * 1000 <= t) return 'not-modified';
    }
  }
  return undefined;
}
