/** A small extension table: enough for browsers and Finder previews, no dependency. */
const TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  xhtml: 'application/xhtml+xml',
  css: 'text/css',
  js: 'text/javascript',
  json: 'application/json',
  xml: 'application/xml',
  csv: 'text/csv',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  heic: 'image/heic',
  mp3: 'audio/mpeg',
  flac: 'audio/flac',
  wav: 'audio/wav',
  mp4: 'video/mp4',
  mkv: 'video/x-matroska',
  mov: 'video/quicktime',
  webm: 'video/webm',
};

export function contentTypeFor(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  return (dot > 0 && TYPES[name.slice(dot + 1).toLowerCase()]) || 'application/octet-stream';
}

/** Types a browser would run script in (pages, SVG, XML with XHTML or XSLT): served as downloads. */
const ACTIVE = new Set(['text/html; charset=utf-8', 'application/xhtml+xml', 'image/svg+xml', 'application/xml', 'text/javascript']);

/**
 * Headers that make user content harmless on the share's origin: a stored page must not
 * run script next to the DAV API with the browser's cached credentials. `sandbox` gives
 * the document an opaque origin and no script; types that carry script are attachments
 * as well, for browsers without CSP sandbox. Images and video still display inline.
 */
export function userContentHeaders(path: string): Record<string, string> {
  const type = contentTypeFor(path);
  const headers: Record<string, string> = {
    'Content-Type': type,
    'Content-Security-Policy': "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'",
  };
  if (ACTIVE.has(type)) headers['Content-Disposition'] = 'attachment';
  return headers;
}
