import { FsError } from '../../core/fs-error';

/** Export formats by extension, for Google Docs editors files (which have no bytes of their own). */
export const EXPORT_TYPES: Record<string, string> = {
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  pdf: 'application/pdf',
  odt: 'application/vnd.oasis.opendocument.text',
  ods: 'application/vnd.oasis.opendocument.spreadsheet',
  odp: 'application/vnd.oasis.opendocument.presentation',
  txt: 'text/plain',
  csv: 'text/csv',
};

/** Which extension each Google type exports to by default (`export=doc:pdf,sheet:csv` changes it). */
export const DEFAULT_EXPORTS: Record<string, string> = {
  'application/vnd.google-apps.document': 'docx',
  'application/vnd.google-apps.spreadsheet': 'xlsx',
  'application/vnd.google-apps.presentation': 'pdf',
  'application/vnd.google-apps.drawing': 'pdf',
};

const SHORT: Record<string, string> = { doc: 'document', sheet: 'spreadsheet', slides: 'presentation', drawing: 'drawing' };

/** Where a Drive location lives: `gdrive://FOLDER_ID[?root=URL&export=doc:pdf,sheet:csv]`. */
export interface GdriveLocation {
  /** A folder id, a shared drive id, or 'root' (My Drive). */
  folderId: string;
  /** The API root (default https://www.googleapis.com/); a loopback test server in tests. */
  rootUrl: string;
  /** Google mimeType -> export extension. */
  exports: Record<string, string>;
}

/**
 * Throws EINVAL unless `url` may carry a Drive token: https, or plain http to this machine's
 * loopback (the test servers). Plain http to any other host would hand the bearer token (or
 * the refresh token) to whoever is on the path.
 */
export function requireTokenSafeUrl(url: string, what: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FsError('EINVAL', `${what} ${JSON.stringify(url)} is not an http(s) URL`);
  }
  if (u.protocol === 'https:') return;
  if (u.protocol !== 'http:') throw new FsError('EINVAL', `${what} ${JSON.stringify(url)} is not an http(s) URL`);
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (!loopback) throw new FsError('EINVAL', `${what} ${JSON.stringify(url)} must use https: plain http is only allowed to loopback (the Drive token would travel in clear)`);
}

const FORM = 'gdrive://FOLDER_ID[?root=URL&export=doc:docx,sheet:xlsx,slides:pdf]';

/** Parses a gdrive:// URI. Throws EINVAL for anything else (unknown parameters too: a typo must not pass silently). */
export function parseGdriveUri(uri: string): GdriveLocation {
  const m = /^gdrive:\/\/([A-Za-z0-9_-]+)\/?(?:\?([^#]*))?$/.exec(uri);
  if (!m) throw new FsError('EINVAL', `cannot read ${JSON.stringify(uri)} as a Drive location: use ${FORM}`);
  const q = new URLSearchParams(m[2] ?? '');
  for (const k of q.keys()) if (k !== 'root' && k !== 'export') throw new FsError('EINVAL', `unknown parameter ${JSON.stringify(k)} in ${uri} (${FORM})`);
  let rootUrl = q.get('root') ?? 'https://www.googleapis.com/';
  requireTokenSafeUrl(rootUrl, 'root');
  if (!rootUrl.endsWith('/')) rootUrl += '/';
  const formats = { ...DEFAULT_EXPORTS };
  for (const pair of (q.get('export') ?? '').split(',').filter(Boolean)) {
    const [kind, ext] = pair.split(':');
    const type = `application/vnd.google-apps.${SHORT[kind] ?? kind}`;
    if (!ext || !EXPORT_TYPES[ext]) throw new FsError('EINVAL', `export ${JSON.stringify(pair)}: use KIND:EXT with EXT one of ${Object.keys(EXPORT_TYPES).join(', ')}`);
    formats[type] = ext;
  }
  return { folderId: m[1], rootUrl, exports: formats };
}
