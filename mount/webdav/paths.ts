import { HttpError } from './http-error';

/** A request path reduced to a virtual VFS path (decodeRequestPath throws HttpError 400/414 instead of returning a bad one). */
export interface RequestPath {
  /** '/' or '/<location>/<rel>' with no trailing slash. */
  vpath: string;
  /** The URL ended in '/': clients mean a collection. */
  trailingSlash: boolean;
}

const MAX_URL_BYTES = 8192;

/**
 * Decodes the path of a request-target or Destination header into a virtual path.
 * Every segment is percent-decoded exactly once and then checked: a decoded segment
 * may not be '.', '..', contain '/', '\\' or NUL, so `..`, `%2e%2e`, `%2f`, `%5c` and raw
 * backslashes are all refused (400) instead of being resolved. Resolving them would be
 * "safe" inside a virtual namespace too, but refusing is simpler to reason about and no
 * legitimate client sends them. Throws HttpError 400 (malformed) or 414 (too long).
 */
export function decodeRequestPath(target: string): RequestPath {
  if (Buffer.byteLength(target) > MAX_URL_BYTES) throw new HttpError(414, 'request URL too long');
  let path = target;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    // absolute-form (proxies, some clients) and absolute Destination URLs
    const i = path.indexOf('/', path.indexOf('//') + 2);
    path = i < 0 ? '/' : path.slice(i);
  }
  if (path.includes('#')) throw new HttpError(400, 'fragment in request URL');
  const q = path.indexOf('?');
  if (q >= 0) path = path.slice(0, q);
  if (!path.startsWith('/')) throw new HttpError(400, 'request path must be absolute');
  if (path.includes('\\')) throw new HttpError(400, 'backslash in request path');
  const segments: string[] = [];
  for (const raw of path.split('/')) {
    if (raw === '') continue;
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      throw new HttpError(400, 'malformed percent-encoding in request path');
    }
    if (seg === '.' || seg === '..' || /[/\\\0]/.test(seg)) throw new HttpError(400, `refused path segment ${JSON.stringify(seg)}`);
    // eslint-disable-next-line no-control-regex -- refusing control characters is the point
    if (/[\u0000-\u001f\u007f]/.test(seg)) throw new HttpError(400, 'control character in path');
    segments.push(seg);
  }
  return { vpath: '/' + segments.join('/'), trailingSlash: path.endsWith('/') && segments.length > 0 };
}

/** Characters kept as-is in an href segment (RFC 3986 pchar minus ':' and '@' for client safety). */
function encodeSegment(seg: string): string {
  return encodeURIComponent(seg).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** The URL path of a virtual path; collections end in '/'. */
export function hrefFor(vpath: string, isCollection: boolean): string {
  if (vpath === '/') return '/';
  const enc = vpath.split('/').filter(Boolean).map(encodeSegment).join('/');
  return '/' + enc + (isCollection ? '/' : '');
}

export function parentPath(vpath: string): string {
  const i = vpath.lastIndexOf('/');
  return i <= 0 ? '/' : vpath.slice(0, i);
}

export function baseName(vpath: string): string {
  return vpath.slice(vpath.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** True when `inner` is `outer` or inside it. */
export function isWithin(inner: string, outer: string): boolean {
  return outer === '/' || inner === outer || inner.startsWith(outer + '/');
}

/** Host header values that name this machine's loopback interface. */
export function isLoopbackHost(hostHeader: string | undefined): boolean {
  if (!hostHeader) return false;
  let host = hostHeader.trim().toLowerCase();
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']'));
  else if (host.includes(':')) host = host.slice(0, host.lastIndexOf(':'));
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function isLoopbackAddress(addr: string): boolean {
  return addr === 'localhost' || addr === '::1' || /^127\./.test(addr);
}

/**
 * The Unicode normal forms of a path other than itself. macOS sends names in NFD while
 * files made on Linux are usually NFC (and vice versa), so a name that does not resolve
 * as sent is tried in the other form before answering 404.
 */
export function otherNormalForms(vpath: string): string[] {
  // eslint-disable-next-line no-control-regex -- plain ASCII, control characters included
  if (/^[\x00-\x7f]*$/.test(vpath)) return [];
  return [...new Set([vpath.normalize('NFC'), vpath.normalize('NFD')])].filter((p) => p !== vpath);
}
