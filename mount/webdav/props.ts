import { etagOf } from './etag';
import type { Attr, StatFs, Vfs } from '../vfs/types';
import type { Lock, LockManager } from './locks';
import type { PropOut } from './multistatus';
import { hrefFor } from './paths';
import { contentTypeFor } from './content-type';
import { escapeXml } from './xml';

/** Live DAV: properties returned by allprop (quota ones are only sent when asked, RFC 4331). */
export const ALLPROP_LIVE = [
  'creationdate',
  'displayname',
  'getcontentlength',
  'getcontenttype',
  'getetag',
  'getlastmodified',
  'resourcetype',
  'supportedlock',
  'lockdiscovery',
] as const;
export const QUOTA_PROPS = ['quota-available-bytes', 'quota-used-bytes'] as const;
/** Every live property name we compute; PROPPATCH may not change these (403 cannot-modify-protected-property). */
export const LIVE_PROPS = new Set<string>([...ALLPROP_LIVE, ...QUOTA_PROPS, 'getcontentlanguage']);

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

export function activeLockXml(l: Lock, now = Date.now()): string {
  const left = Math.max(0, Math.round((l.expiresAt - now) / 1000));
  return (
    `<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:${l.scope}/></D:lockscope>` +
    `<D:depth>${l.depth === 0 ? '0' : 'infinity'}</D:depth>` +
    (l.owner ? `<D:owner>${l.owner}</D:owner>` : '') +
    `<D:timeout>Second-${left}</D:timeout><D:locktoken><D:href>${escapeXml(l.token)}</D:href></D:locktoken>` +
    `<D:lockroot><D:href>${escapeXml(hrefFor(l.root, false))}</D:href></D:lockroot></D:activelock>`
  );
}

const SUPPORTED_LOCK =
  '<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>' +
  '<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>';

/**
 * The value of one live DAV: property, or undefined when the resource does not have it
 * (getcontentlength on a collection) or it is not a live property. Synchronous, because
 * a Depth 1 PROPFIND computes it tens of thousands of times; the quota properties need
 * statfs and come from quotaProps() instead.
 */
export function liveProp(name: string, path: string, attr: Attr, locks: LockManager): PropOut | undefined {
  const isDir = attr.type === 'dir';
  const p = (xml: string): PropOut => ({ ns: 'DAV:', name, xml });
  switch (name) {
    case 'creationdate':
      return p(new Date(Math.min(attr.ctimeMs, attr.mtimeMs)).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    case 'displayname':
      return p(escapeXml(path === '/' ? '' : path.slice(path.lastIndexOf('/') + 1)));
    case 'getcontentlength':
      return isDir ? undefined : p(String(attr.size));
    case 'getcontenttype':
      return isDir ? p('httpd/unix-directory') : p(escapeXml(contentTypeFor(path)));
    case 'getetag':
      return p(escapeXml(etagOf(attr)));
    case 'getlastmodified':
      return p(httpDate(attr.mtimeMs));
    case 'resourcetype':
      return p(isDir ? '<D:collection/>' : '');
    case 'supportedlock':
      return p(SUPPORTED_LOCK);
    case 'lockdiscovery':
      return p(
        locks
          .covering(path)
          .map((l) => activeLockXml(l))
          .join(''),
      );
    default:
      return undefined;
  }
}

/** RFC 4331 quota of the location holding `path` (statfs once per location per request). */
export async function quotaProp(name: string, path: string, vfs: Vfs, statfsCache: Map<string, StatFs>): Promise<PropOut | undefined> {
  if (name !== 'quota-available-bytes' && name !== 'quota-used-bytes') return undefined;
  const key = path.split('/')[1] ?? '';
  let fs = statfsCache.get(key);
  if (!fs) {
    fs = await vfs.statfs(path);
    statfsCache.set(key, fs);
  }
  const v = name === 'quota-available-bytes' ? fs.bavail * fs.frsize : (fs.blocks - fs.bfree) * fs.frsize;
  return { ns: 'DAV:', name, xml: String(Math.max(0, Math.floor(v))) };
}
