import { etagOf } from './etag';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Attr, Vfs } from '../vfs/types';
import { isFsError } from '../../core/fs-error';
import { HttpError } from './http-error';
import { parseIfHeader, submittedTokens, type IfList } from './if-header';
import type { LockManager } from './locks';
import { decodeRequestPath } from './paths';
import type { XmlLimits } from './xml';
import type { Metrics } from './metrics';

/**
 * Everything one request handler needs, built once per request by server.ts. Handlers
 * taking a Ctx throw HttpError (protocol answers) or FsError (mapped through status.ts);
 * server.ts turns both into a response, so nothing escapes a request.
 */
export interface Ctx {
  vfs: Vfs;
  locks: LockManager;
  /** Who is asking, for per-principal caps: `user@client-address`. */
  principal: string;
  req: IncomingMessage;
  res: ServerResponse;
  /** Virtual path of the request URL. */
  path: string;
  trailingSlash: boolean;
  /** Parsed `If:` header (null when absent). */
  ifLists: IfList[] | null;
  /** Lock tokens submitted through the If header. */
  tokens: Set<string>;
  maxBodyBytes: number;
  xmlLimits: XmlLimits;
  metrics: Metrics;
  log?: Logger;
  /** Open VFS handles of this server, for leak checks in /metrics. */
  handles: { open: number };
}

/** getattr that answers null for a missing resource (ENOENT, or ENOTDIR on the way). */
export async function statOrNull(vfs: Vfs, path: string): Promise<Attr | null> {
  try {
    return await vfs.getattr(path);
  } catch (err) {
    if (isFsError(err) && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return null;
    throw err;
  }
}

/** Parses the If header of a request once; HttpError 400 when it is malformed. */
export function readIfHeader(req: IncomingMessage): { ifLists: IfList[] | null; tokens: Set<string> } {
  const h = req.headers['if'];
  if (h === undefined) return { ifLists: null, tokens: new Set() };
  const ifLists = parseIfHeader(Array.isArray(h) ? h.join(' ') : h);
  return { ifLists, tokens: submittedTokens(ifLists) };
}

function etagMatches(a: string, b: string): boolean {
  const strip = (e: string) => (e.startsWith('W/') ? e.slice(2) : e);
  return strip(a) === strip(b);
}

/**
 * Evaluates the If header (RFC 4918 §10.4): true when at least one list holds, each list
 * evaluated against its tagged resource (or the request URL). A state token holds when it
 * is the token of a lock covering that resource; an entity tag when it equals the
 * resource's current ETag. Throws HttpError 412 when no list holds.
 */
export async function checkIfHeader(ctx: Ctx, requestAttr: Attr | null): Promise<void> {
  if (!ctx.ifLists) return;
  const attrs = new Map<string, Attr | null>([[ctx.path, requestAttr]]);
  for (const list of ctx.ifLists) {
    let path = ctx.path;
    if (list.resource !== null) {
      try {
        path = decodeRequestPath(list.resource).vpath;
      } catch {
        continue; // a tag we cannot map names no resource of ours: the list cannot hold
      }
    }
    if (!attrs.has(path)) attrs.set(path, await statOrNull(ctx.vfs, path));
    const attr = attrs.get(path) ?? null;
    const holds = list.conditions.every((c) => {
      let v: boolean;
      if (c.token !== undefined) v = ctx.locks.covering(path).some((l) => l.token === c.token);
      else v = attr !== null && etagMatches(etagOf(attr), c.etag!);
      return c.not ? !v : v;
    });
    if (holds) return;
  }
  throw new HttpError(412, 'If header did not match');
}

/**
 * Reads a (small, XML) request body completely, refusing more than `limit` bytes with
 * HttpError 413 as soon as the limit is crossed (the rest is never buffered).
 */
export async function readSmallBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** True when the request carries a body (Content-Length > 0 or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding']) return true;
  return Number(req.headers['content-length'] ?? 0) > 0;
}

/** Depth header as 0, 1 or 'infinity'; `fallback` when absent; HttpError 400 when bogus. */
export function readDepth(req: IncomingMessage, fallback: 0 | 1 | 'infinity'): 0 | 1 | 'infinity' {
  const h = req.headers['depth'];
  if (h === undefined) return fallback;
  const v = String(h).trim().toLowerCase();
  if (v === '0') return 0;
  if (v === '1') return 1;
  if (v === 'infinity') return 'infinity';
  throw new HttpError(400, `bad Depth header ${JSON.stringify(h)}`);
}

/** One request header as a string (repeated headers joined with ', '). */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}
