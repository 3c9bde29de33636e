import type { DirEntry } from '../vfs/types';
import { contentTypeFor } from './content-type';
import { hrefFor, joinPath } from './paths';

/**
 * The listing's own policy: no script of any kind (default-src 'none' covers script-src),
 * but images and video of the same origin load, so pictures and clips preview inline.
 * Not sandboxed: a sandboxed page has an opaque origin, and its 'self' would not match.
 */
export const LISTING_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** A lazy inline preview for images and video (the files themselves carry a sandbox CSP). */
function preview(href: string, path: string): string {
  const type = contentTypeFor(path);
  if (type.startsWith('image/') && type !== 'image/svg+xml' && type !== 'image/heic') return `<img src="${esc(href)}" loading="lazy" height="48" alt="">`;
  if (type.startsWith('video/')) return `<video src="${esc(href)}" preload="none" controls width="160"></video>`;
  return '';
}

/** HTML-escapes text and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * The plain HTML page a browser gets for GET on a collection. Every name and href is
 * HTML-escaped (names may hold `<script>`); no scripts, no external resources; images
 * and video of the listed folder preview inline (served with LISTING_CSP).
 */
export function renderListing(path: string, entries: DirEntry[]): string {
  const rows = entries
    .slice()
    .sort((a, b) => ((a.attr.type === 'dir') !== (b.attr.type === 'dir') ? (a.attr.type === 'dir' ? -1 : 1) : a.name.localeCompare(b.name)))
    .map((e) => {
      const isDir = e.attr.type === 'dir';
      const href = hrefFor(joinPath(path, e.name), isDir);
      const size = isDir ? '' : String(e.attr.size);
      const pv = isDir ? '' : preview(href, e.name);
      return `<tr><td><a href="${esc(href)}">${esc(e.name)}${isDir ? '/' : ''}</a></td><td>${size}</td><td>${new Date(e.attr.mtimeMs).toISOString()}</td><td>${pv}</td></tr>`;
    });
  const up = path === '/' ? '' : `<tr><td><a href="${esc(hrefFor(path.slice(0, path.lastIndexOf('/')) || '/', true))}">../</a></td><td></td><td></td><td></td></tr>`;
  return (
    `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Index of ${esc(path)}</title></head>` +
    `<body><h1>Index of ${esc(path)}</h1><table><tr><th>Name</th><th>Size</th><th>Modified</th><th>Preview</th></tr>${up}${rows.join('')}</table></body></html>\n`
  );
}
