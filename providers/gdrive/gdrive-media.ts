import type { Readable } from 'node:stream';
import { FsError } from '../../core/fs-error';
import { HttpPool, type GetAnswer, type GetTarget, type GetTimeouts } from '../../core/http-get';
import type { OAuth2Client } from './gdrive-auth';

/** A media download's answer: 206 (the range asked) or 200 (the whole content: no range asked, or a server that ignores Range). */
export interface MediaAnswer {
  status: 200 | 206;
  /** `bytes a-b/size` of a 206. */
  contentRange?: string;
  contentLength?: number;
  /** The body as it arrives, straight from the socket into its reader's buffers (through the client library behind a proxy). */
  body: Readable;
}

/** Connect and idle limits of a download: an idle socket (no header, no body byte) this long is cut and the request retried. */
export const MEDIA_TIMEOUTS: GetTimeouts = { connectMs: 10_000, idleMs: 30_000 };

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** Whether the environment sends requests to `url` through a proxy (the client library's reading of HTTPS_PROXY, HTTP_PROXY and NO_PROXY). */
export function usesProxy(url: URL, env: NodeJS.ProcessEnv = process.env): boolean {
  if (!(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy)) return false;
  const rules = (env.NO_PROXY ?? env.no_proxy ?? '').split(',').map((r) => r.trim());
  return !rules.some((r) =>
    r.startsWith('*.') || r.startsWith('.') ? url.hostname.endsWith(r.replace(/^\*\./, '.')) : r !== '' && (r === url.origin || r === url.hostname || r === url.href),
  );
}

/** An HTTP error shaped like the client library's (response.status, response.data), so gdrive-retry and driveError read both alike. */
function mediaError(status: number, body: string): Error {
  let message = `HTTP ${status}`;
  try {
    message = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? message;
  } catch {
    /* not JSON: the status says it */
  }
  return Object.assign(new Error(message), { status, response: { status, data: body } });
}

/**
 * Drive content downloads (`files.get alt=media`, optionally ranged) without the client
 * library: one GET on a kept-alive connection of our own (core/http-get.ts), its body handed
 * over as it arrives (gaxios and node-fetch add a stream hop per chunk and their per-request
 * work: a cold 4 KiB read through the mount took 3.2 ms with them, 1.6 ms without,
 * docs/gdrive.md; node:http a fresh buffer and a copy per read).
 * The bearer token comes from the location's OAuth client, which refreshes it before it
 * expires; a 401 refreshes it once more and asks again, as the library does.
 * Metadata, listings, changes and uploads stay on the library (gdrive-api.ts).
 */
export class DriveMedia {
  private readonly pool = new HttpPool();
  private readonly root: URL;
  /** The refresh in flight after a 401: concurrent downloads that got one share it. */
  private refreshing?: Promise<unknown>;
  private readonly proxied: boolean;

  constructor(
    rootUrl: string,
    private readonly auth: OAuth2Client,
    private readonly timeouts: GetTimeouts = MEDIA_TIMEOUTS,
  ) {
    this.root = new URL(rootUrl);
    this.proxied = usesProxy(this.root);
  }

  /**
   * GET the content of file `id` (`range`: a Range header value). Resolves with the head and the
   * streaming body of a 200 or 206; rejects with a library-shaped HTTP error (status, response
   * data: 401 after a refresh, 403, 404, 416, 429, 5xx...), the refresh's own error (invalid_grant),
   * a socket error (code ECONNRESET...), a TimeoutError, an AbortError, or EIO for a redirect it will not follow.
   */
  async get(id: string, range: string | undefined, signal?: AbortSignal): Promise<MediaAnswer> {
    if (this.proxied) return this.viaLibrary(id, range, signal);
    let token = await this.token();
    let res = await this.send(id, range, token, signal);
    if (res.status === 401) {
      res.resume();
      // Expired or revoked early: refresh once (unless another download just did) and ask again.
      if (this.auth.credentials.access_token === token) {
        this.refreshing ??= this.auth.refreshAccessToken().finally(() => (this.refreshing = undefined));
        await this.refreshing;
      }
      token = await this.token();
      res = await this.send(id, range, token, signal);
    }
    const status = res.status;
    if (status === 200 || status === 206) {
      const len = res.headers['content-length'];
      return { status, contentRange: res.headers['content-range'], contentLength: len === undefined ? undefined : Number(len), body: res };
    }
    let body = '';
    res.setEncoding('utf8');
    for await (const c of res) if (body.length < 64 * 1024) body += c as string;
    throw mediaError(status, body);
  }

  /**
   * Behind an HTTP(S) proxy (the environment names one that the API's host is not exempt from
   * by NO_PROXY), downloads go through the client library, which speaks to proxies; node:http
   * does not. The library refreshes the token on a 401 itself.
   */
  private async viaLibrary(id: string, range: string | undefined, signal?: AbortSignal): Promise<MediaAnswer> {
    const url = new URL(`drive/v3/files/${encodeURIComponent(id)}?alt=media&supportsAllDrives=true`, this.root).toString();
    const r = await this.auth.request<Readable>({ url, responseType: 'stream', headers: range ? { Range: range } : {}, signal, retry: false });
    const len = r.headers.get('content-length');
    const status = r.status === 206 ? 206 : 200;
    return { status, contentRange: r.headers.get('content-range') ?? undefined, contentLength: len === null ? undefined : Number(len), body: r.data };
  }

  private async token(): Promise<string> {
    const t = (await this.auth.getAccessToken()).token;
    if (!t) throw new Error('No refresh token is set: no access token to send');
    return t;
  }

  /**
   * The GET, following up to MAX_REDIRECTS redirects (Drive may send a download to another
   * host). The token goes only to the API's own host and never over plain http to another one.
   */
  private async send(id: string, range: string | undefined, token: string, signal?: AbortSignal): Promise<GetAnswer> {
    let url = new URL(`drive/v3/files/${encodeURIComponent(id)}?alt=media&supportsAllDrives=true`, this.root);
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'vdfs' };
      if (url.host === this.root.host && url.protocol === this.root.protocol) headers.authorization = `Bearer ${token}`;
      if (range) headers.range = range;
      const target: GetTarget = {
        protocol: url.protocol === 'https:' ? 'https:' : 'http:',
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || undefined,
        path: url.pathname + url.search,
      };
      const res = await this.pool.get(target, headers, this.timeouts, signal);
      const location = res.headers.location;
      if (!REDIRECTS.has(res.status) || !location) return res;
      res.resume();
      const next = new URL(location, url);
      if (hops >= MAX_REDIRECTS || (next.protocol !== 'https:' && !(next.protocol === 'http:' && next.host === this.root.host)))
        throw new FsError('EIO', `Drive download of ${id} redirected to ${next.protocol}//${next.host} (${hops + 1} redirects): not followed`);
      url = next;
    }
  }

  /** Closes the kept-alive sockets. */
  close(): void {
    this.pool.close();
  }
}
