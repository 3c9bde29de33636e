/** A small extension table: enough for browsers and Finder previews, no dependency. */
const TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8', md: 'text/markdown; charset=utf-8', html: 'text/html; charset=utf-8', htm: 'text/html; charset=utf-8',
  css: 'text/css', js: 'text/javascript', json: 'application/json', xml: 'application/xml', csv: 'text/csv',
  pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip', tar: 'application/x-tar',
  jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp', svg: 'image/svg+xml',
  heic: 'image/heic', mp3: 'audio/mpeg', flac: 'audio/flac', wav: 'audio/wav', mp4: 'video/mp4', mkv: 'video/x-matroska',
  mov: 'video/quicktime', webm: 'video/webm',
};

export function contentTypeFor(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  return (dot > 0 && TYPES[name.slice(dot + 1).toLowerCase()]) || 'application/octet-stream';
}
