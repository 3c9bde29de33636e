import type { Attr, Vfs } from '../vfs/types';
import { statOrNull } from './context';
import { HttpError } from './http-error';
import { isFinderJunk, isFinderMarker, markerAttr } from './junk';
import { parentPath } from './paths';

const MAX_HOPS = 8;

/**
 * What a symlink shows through WebDAV. WebDAV has no symlinks, so a link is served as
 * its target when that target is a relative path that stays inside the link's own
 * location (`/loc/...`), and is hidden (null) otherwise: an absolute or escaping target
 * would let a link reach outside the share. Non-links are returned as they are.
 * Throws FsError only from getattr/readlink failures other than "missing".
 */
export async function followLink(vfs: Vfs, path: string, attr: Attr): Promise<{ path: string; attr: Attr } | null> {
  let cur = path;
  let a = attr;
  for (let hop = 0; a.type === 'symlink'; hop++) {
    if (hop >= MAX_HOPS) return null;
    const target = await vfs.readlink(cur);
    if (target === '' || target.startsWith('/')) return null;
    const parts = parentPath(cur).split('/').filter(Boolean);
    const location = parts[0];
    if (!location) return null;
    for (const seg of target.split('/')) {
      if (seg === '' || seg === '.') continue;
      if (seg === '..') {
        if (parts.length <= 1) return null; // would leave the location
        parts.pop();
      } else parts.push(seg);
    }
    cur = '/' + parts.join('/');
    const next = await statOrNull(vfs, cur);
    if (!next) return null;
    a = next;
  }
  return { path: cur, attr: a };
}

/**
 * What GET and PROPFIND show at `path`: Finder junk is never stored (404), a Finder marker that
 * does not exist shows as an empty file, and a symlink shows as its target (followLink).
 * Throws HttpError 404 (junk, or a link leading outside its location or nowhere), or FsError
 * from getattr (ENOENT for a missing path).
 */
export async function servedTarget(vfs: Vfs, path: string): Promise<{ path: string; attr: Attr }> {
  if (isFinderJunk(path)) throw new HttpError(404, 'not stored'); // answered from memory, never from the index
  const found = isFinderMarker(path) ? await statOrNull(vfs, path) : await vfs.getattr(path);
  const linked = found ? await followLink(vfs, path, found) : { path, attr: markerAttr() };
  if (!linked) throw new HttpError(404, 'symlink to outside its location, or dangling');
  return linked;
}
