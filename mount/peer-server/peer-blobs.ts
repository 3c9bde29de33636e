import { constants as C } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { openBeneath } from '../../core/beneath';
import { ChunkPool, streamRange } from '../../core/chunk-stream';
import { FsError } from '../../core/fs-error';
import { parseRangeHeader, type ByteRange } from '../../core/http-range';
import { localVersion } from '../../core/local-stat';
import { readFullyInto } from '../../core/read-fully';
import type { ServeSource } from './peer-sources';

const HASH_RE = /^[0-9a-f]{64}$/;

/** Reads in flight ahead of the socket, 1 MiB each. */
const AHEAD = 2;
/** Every blob answer's chunks, reused across answers (core/chunk-stream.ts: fresh buffers cost page faults). */
const chunks = new ChunkPool(1 << 20, AHEAD + 2);

/** The peer edge's reading of a Range header: one `bytes=` range, anything else is EINVAL. */
function blobRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  const r = parseRangeHeader(header, size);
  if (r === 'invalid') throw new FsError('EINVAL', `unsupported Range ${JSON.stringify((header ?? '').slice(0, 80))}: one bytes=FIRST-LAST range only`);
  return r;
}

/**
 * `GET|HEAD /v1/blobs/HASH`: the bytes of a file with that content in a location shared with
 * `peer`, whole or one range. Opened beneath its location's root without following a symlink,
 * and only while it is still the indexed file. Throws FsError EINVAL (bad hash or range),
 * ENOENT (unknown or unshared hash), ESTALE (the file changed or cannot be opened).
 */
export async function serveBlob(log: Logger, index: ServeSource, req: IncomingMessage, res: ServerResponse, peer: string, hash: string): Promise<void> {
  if (!HASH_RE.test(hash)) throw new FsError('EINVAL', 'blobs are named by their 64-hex-digit BLAKE3 hash');
  const f = index.blobFile(peer, hash);
  let fh: FileHandle | undefined;
  try {
    // Never through a symlink on the way: a directory swapped for one after the scan.
    fh = await openBeneath(f.root, f.rel, C.O_RDONLY);
  } catch (err) {
    throw new FsError('ESTALE', `blob ${hash.slice(0, 16)} is indexed but its file cannot be opened: ${(err as Error).message}`, err);
  }
  try {
    const st = await fh.stat({ bigint: true });
    // Not the indexed file (other inode, size or mtime): refuse rather than send bytes that
    // may not be the content this hash names.
    if (!st.isFile() || localVersion(st) !== f.version) throw new FsError('ESTALE', `blob ${hash.slice(0, 16)} changed on disk since it was indexed`);
    const range = blobRange(req.headers.range, f.size);
    if (range === 'unsatisfiable') {
      res.writeHead(416, { 'content-range': `bytes */${f.size}`, 'content-length': 0 });
      res.end();
      return;
    }
    const length = range ? range.end - range.start + 1 : f.size;
    const headers: Record<string, string | number> = { 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream', etag: `"${hash}"`, 'content-length': length };
    if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${f.size}`;
    res.writeHead(range ? 206 : 200, headers);
    log.debug({ peer: peer.slice(0, 16), hash: hash.slice(0, 16), start: range?.start ?? 0, length }, 'peer: blob served');
    if (req.method === 'HEAD' || length === 0) return void res.end();
    const file = fh;
    let r: 'done' | 'short' | 'gone';
    try {
      r = await streamRange(res, (buf, pos) => readFullyInto(file, buf, pos), range?.start ?? 0, length, chunks, AHEAD);
    } catch (err) {
      // Headers are out: the reader sees a short body and tries another replica.
      log.warn({ peer: peer.slice(0, 16), hash: hash.slice(0, 16), err: (err as Error).message }, 'peer: reading a blob failed mid-answer; connection cut');
      r = 'short';
    }
    if (r === 'short') res.destroy();
    else if (r === 'done') res.end();
  } finally {
    await fh?.close();
  }
}
