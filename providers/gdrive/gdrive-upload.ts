import { open } from 'node:fs/promises';
import { FsError } from '../../core/fs-error';
import { FILE_FIELDS, type DriveApi, type DriveFile } from './gdrive-api';
import { httpStatus, retryableEio } from './gdrive-retry';

/** A multiple of 256 KiB, as Drive requires for every chunk but the last. */
export const CHUNK = 8 * 1024 * 1024;

interface Res {
  status: number;
  headers: Headers | Record<string, string>;
  data: unknown;
}

function header(h: Res['headers'], name: string): string | undefined {
  return typeof (h as Headers).get === 'function' ? ((h as Headers).get(name) ?? undefined) : (h as Record<string, string>)[name];
}

/** Bytes the session holds, from a 308's `Range: bytes=0-N` (none: 0). */
function committed(r: Res): number {
  const m = /bytes=0-(\d+)/.exec(header(r.headers, 'range') ?? '');
  return m ? Number(m[1]) + 1 : 0;
}

/**
 * Uploads a local file with Drive's resumable protocol: a session is opened (POST to create
 * with `meta`, PATCH to replace the content of `fileId`), then the bytes go up in 8 MiB
 * chunks. A chunk that fails (reset, 5xx, rate limit) is retried after asking the session how
 * much it holds (`Content-Range: bytes * /SIZE`), so no byte is sent twice and a failure late
 * in a big file does not restart it. Returns the file's metadata. Throws FsError.
 */
export async function resumableUpload(api: DriveApi, source: string, size: number, target: { fileId?: string; meta: DriveFile }, what: string): Promise<DriveFile> {
  const base = `${api.rootUrl}upload/drive/v3/files${target.fileId ? `/${encodeURIComponent(target.fileId)}` : ''}?uploadType=resumable&supportsAllDrives=true&fields=${encodeURIComponent(FILE_FIELDS)}`;
  const start = await api.call(
    what,
    async () =>
      (await api.auth.request({
        url: base,
        method: target.fileId ? 'PATCH' : 'POST',
        data: target.meta,
        retry: false,
        headers: { 'Content-Type': 'application/json; charset=UTF-8', 'X-Upload-Content-Length': String(size) },
      })) as unknown as Res,
  );
  const session = header(start.headers, 'location');
  if (!session) throw new FsError('EIO', `${what}: Drive opened no upload session (no Location header)`);
  const put = async (range: string, body?: Buffer): Promise<Res> =>
    (await api.auth.request({
      url: session,
      method: 'PUT',
      data: body ?? Buffer.alloc(0),
      retry: false,
      responseType: 'json',
      headers: { 'Content-Range': range, 'Content-Type': 'application/octet-stream' },
      validateStatus: (s: number) => (s >= 200 && s < 300) || s === 308,
    })) as unknown as Res;
  const fh = await open(source, 'r').catch((err: Error) => {
    throw new FsError('ENOENT', `${what}: cannot read ${source}: ${err.message}`, err);
  });
  try {
    if (size === 0) return (await api.call(what, () => put('bytes */0'))).data as DriveFile;
    let offset = 0;
    let resumed = false;
    for (;;) {
      const r = await api.call(what, async () => {
        if (resumed) {
          // After a failed chunk: continue from what the session really holds.
          const q = await put(`bytes */${size}`);
          if (q.status !== 308) return q;
          offset = committed(q);
        }
        resumed = true;
        const len = Math.min(CHUNK, size - offset);
        const buf = Buffer.alloc(len);
        const { bytesRead } = await fh.read(buf, 0, len, offset);
        if (bytesRead !== len) throw new FsError('EIO', `${what}: ${source} shrank while being uploaded`);
        const res = await put(`bytes ${offset}-${offset + len - 1}/${size}`, buf);
        resumed = false;
        return res;
      });
      if (r.status !== 308) return r.data as DriveFile;
      const next = committed(r);
      if (next <= offset && offset !== 0) throw retryableEio(`${what}: the upload session made no progress at ${offset}`);
      offset = next;
    }
  } catch (err) {
    if (err instanceof FsError) throw err;
    throw new FsError(httpStatus(err) === 404 ? 'ESTALE' : 'EIO', `${what}: ${(err as Error).message}`, err);
  } finally {
    await fh.close();
  }
}
