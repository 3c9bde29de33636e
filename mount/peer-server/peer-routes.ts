import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { FsError } from '../../core/fs-error';
import { noteSwallowed } from '../../core/swallowed';
import type { NodeInfo, SnapshotEnd } from '../../core/peer-protocol';
import type { ChangeFeed } from './change-feed';
import { serveBlob } from './peer-blobs';
import type { PeerGate } from './peer-gate';
import { handlePair, type PairRoute } from './peer-pair-route';
import { sendError, sendJson } from './peer-replies';
import type { PeerDirectory, ServeSource } from './peer-sources';

const MAX_URL = 2048;
export const MAX_WAIT_S = 30;
const MAX_LIMIT = 5000;
/** Snapshot bytes per write: a 1M-entry tree is hundreds of MB, sent in pieces with back-pressure. */
const SNAPSHOT_PIECE = 256 * 1024;
/** A peer's last_seen is written at most this often. */
const TOUCH_MS = 10_000;

/** What the routes read and answer from. */
export interface PeerRoutes {
  self: NodeInfo;
  log: Logger;
  index: ServeSource;
  peers: PeerDirectory;
  gate: PeerGate;
  feed: ChangeFeed;
  pair: PairRoute;
}

function intParam(v: string | null, min: number, max: number, what: string): number {
  if (v === null || !/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) throw new FsError('EINVAL', `${what} must be a whole number from ${min} to ${max}`);
  return Number(v);
}

/**
 * The `request` handler: admitted connections only; an unpaired certificate may only
 * `POST /v1/pair`; a paired node may GET/HEAD the endpoints below, without a request body.
 * Every failure becomes an answer through sendError (PEER_STATUS); nothing is thrown out.
 */
export function peerRequestHandler(r: PeerRoutes): (req: IncomingMessage, res: ServerResponse) => void {
  const lastTouch = new Map<string, number>();
  const touch = (peer: string) => {
    const now = Date.now();
    if (now - (lastTouch.get(peer) ?? 0) <= TOUCH_MS) return;
    lastTouch.set(peer, now);
    try {
      r.peers.touch(peer);
    } catch (err) {
      // Only last_seen is lost (shown by vdfs peer ls); the request goes on.
      noteSwallowed(r.log, 'peer server: recording last contact', err, { peer: peer.slice(0, 16) }, 'debug');
    }
  };
  return (req, res) => {
    const w = r.gate.requestArrived(req.socket);
    if (!w) return void req.socket.destroy();
    const peer = 'peer' in w ? w.peer : undefined;
    void (async () => {
      if ((req.url ?? '').length > MAX_URL) throw new FsError('ENAMETOOLONG', 'request URL too long');
      const url = new URL(req.url ?? '/', 'https://peer');
      if (peer === undefined) {
        if (req.method !== 'POST' || url.pathname !== '/v1/pair') throw new FsError('EACCES', 'a connection with an unpaired certificate may only pair');
        return handlePair(r.pair, req, res);
      }
      if (!r.gate.isPaired(peer)) throw new FsError('EACCES', 'not paired');
      // Every other endpoint is a GET/HEAD: a body is refused (and the connection closed) unread.
      if (req.headers['transfer-encoding'] || Number(req.headers['content-length'] ?? 0) > 0) {
        res.shouldKeepAlive = false;
        throw new FsError('EFBIG', 'this endpoint takes no request body');
      }
      touch(peer);
      return route(r, req, res, peer, url);
    })().catch((err) => sendError(r.log, req, res, err, peer));
  };
}

/** A paired node's request. Throws FsError (ENOENT for an unknown endpoint). */
async function route(r: PeerRoutes, req: IncomingMessage, res: ServerResponse, peer: string, url: URL): Promise<void> {
  const p = url.pathname;
  const get = req.method === 'GET';
  if (get && p === '/v1/node') return sendJson(res, r.self);
  if (get && p === '/v1/locations') return sendJson(res, r.index.locations(peer));
  if (get && p === '/v1/snapshot') return sendSnapshot(r, res, peer, url.searchParams.get('location') ?? '');
  if (get && p === '/v1/changes') return sendChanges(r, req, res, peer, url.searchParams);
  if ((get || req.method === 'HEAD') && p.startsWith('/v1/blobs/')) return serveBlob(r.log, r.index, req, res, peer, p.slice('/v1/blobs/'.length));
  throw new FsError('ENOENT', `no such endpoint ${req.method} ${p.slice(0, 100)} (content is served by hash only)`);
}

/**
 * `GET /v1/snapshot?location=NAME`: NDJSON written while its rows are read: the header, entries
 * in pieces of about 256 KiB (waiting for the socket to drain, so a slow peer holds the cursor,
 * not memory), then the end line with the count. Stops when the peer goes away; always closes.
 */
async function sendSnapshot(r: PeerRoutes, res: ServerResponse, peer: string, location: string): Promise<void> {
  const snap = r.index.snapshot(peer, location);
  try {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.write(JSON.stringify(snap.header) + '\n');
    let count = 0;
    let text = '';
    for (const line of snap.lines) {
      text += JSON.stringify(line) + '\n';
      count++;
      if (text.length < SNAPSHOT_PIECE) continue;
      if (res.destroyed) return;
      const ok = res.write(text);
      text = '';
      if (!ok) await drainOrClose(res);
    }
    if (res.destroyed) return;
    res.end(text + JSON.stringify({ end: true, count } satisfies SnapshotEnd) + '\n');
  } finally {
    snap.close();
  }
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** `GET /v1/changes?location=&since=&limit=&wait=`: a page of changes, long-polling up to `wait` s when there are none. */
async function sendChanges(r: PeerRoutes, req: IncomingMessage, res: ServerResponse, peer: string, q: URLSearchParams): Promise<void> {
  const name = q.get('location') ?? '';
  const since = intParam(q.get('since'), 0, Number.MAX_SAFE_INTEGER, 'since');
  const limit = intParam(q.get('limit') ?? '1000', 1, MAX_LIMIT, 'limit');
  const wait = intParam(q.get('wait') ?? '0', 0, MAX_WAIT_S, 'wait');
  let page = r.index.changes(peer, name, since, limit);
  if (page.changes.length === 0 && wait > 0) {
    await r.feed.wait(req, since, wait * 1000);
    if (req.socket.destroyed) return;
    page = r.index.changes(peer, name, since, limit);
  }
  sendJson(res, page);
}
