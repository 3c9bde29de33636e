import type { DirEntry } from '../vfs/types';
import { hrefFor, joinPath } from './paths';

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * The plain HTML page a browser gets for GET on a collection. Every name and href is
 * HTML-escaped (names may hold `<script>`); no scripts, no external resources.
 */
export function renderListing(path: string, entries: DirEntry[]): string {
  const rows = entries
    .slice()
    .sort((a, b) => (a.attr.type === 'dir') !== (b.attr.type === 'dir') ? (a.attr.type === 'dir' ? -1 : 1) : a.name.localeCompare(b.name))
    .map((e) => {
      const isDir = e.attr.type === 'dir';
      const href = hrefFor(joinPath(path, e.name), isDir);
      const size = isDir ? '' : String(e.attr.size);
      return `<tr><td><a href="${esc(href)}">${esc(e.name)}${isDir ? '/' : ''}</a></td><td>${size}</td><td>${new Date(e.attr.mtimeMs).toISOString()}</td></tr>`;
    });
  const up = path === '/' ? '' : `<tr><td><a href="${esc(hrefFor(path.slice(0, path.lastIndexOf('/')) || '/', true))}">../</a></td><td></td><td></td></tr>`;
  return (
    `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Index of ${esc(path)}</title></head>` +
    `<body><h1>Index of ${esc(path)}</h1><table><tr><th>Name</th><th>Size</th><th>Modified</th></tr>${up}${rows.join('')}</table></body></html>\n`
  );
}
