// The one place where the WebDAV bench turns a target into what goes on the wire: the curl
// arguments and the Node request options. Credentials (Basic/Digest), when a server needs
// them, are added here and nowhere else.
import { Agent, request, type IncomingMessage, type RequestOptions } from 'node:http';

/** A WebDAV target: base URL (ends with "/"), the folder it takes PUTs in, where those land on disk. */
export interface Dav {
  name: string;
  url: string;
  putDir: string;
  finalDir: string;
  auth?: { user: string; pass: string };
}

/**
 * curl's options for a target: no proxy, and the target's credentials when it has some, sent
 * up front as Basic (not --anyauth, which costs every request an extra 401 round trip).
 */
export function davCurlArgs(d: Dav): string {
  const auth = d.auth ? ` --basic -u ${JSON.stringify(`${d.auth.user}:${d.auth.pass}`)}` : '';
  return `-sS --noproxy '*'${auth}`;
}

/** Node request options for `method` on `path` (relative to the target's URL). */
export function davRequestOptions(d: Dav, method: string, path: string, headers: Record<string, string>, agent: Agent): RequestOptions {
  const u = new URL(path, d.url);
  const auth = d.auth ? { authorization: `Basic ${Buffer.from(`${d.auth.user}:${d.auth.pass}`).toString('base64')}` } : {};
  return { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: { ...auth, ...headers }, agent };
}

/** One request; resolves with the status, the body (or its length only when `keep` is false). */
export function davFetch(
  d: Dav,
  method: string,
  path: string,
  headers: Record<string, string>,
  agent: Agent,
  body?: string,
  keep = true,
): Promise<{ status: number; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(davRequestOptions(d, method, path, headers, agent), (res: IncomingMessage) => {
      const parts: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (keep) parts.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, text: keep ? Buffer.concat(parts).toString('utf8') : '' }));
      res.on('error', reject);
    });
    req.setTimeout(120_000, () => req.destroy(new Error(`${method} ${path}: no answer in 120 s`)));
    req.on('error', reject);
    req.end(body);
  });
}
