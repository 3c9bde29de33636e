import type { Attr } from '../vfs/types';

/**
 * macOS Finder noise: AppleDouble `._name` companions and `.DS_Store` files. Finder asks
 * for them for every file it shows and writes them on every copy. We never store them
 * (PUT answers 201/204 and discards the body, so Finder copies do not fail with -36) and
 * answer PROPFIND/GET/HEAD with 404 from memory, without touching the index.
 */
export function isFinderJunk(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return name.startsWith('._') || name === '.DS_Store';
}

/** Prefix of the temporary names PUT streams into before renaming over the target. */
export const PUT_TEMP_PREFIX = '.vdfs-put-';

/** An upload temporary whose last write is this old was abandoned by a crash (a live upload writes every second or so). */
export const STALE_UPLOAD_MS = 6 * 3600_000;

/** Names hidden from listings: in-flight uploads. */
export function isHiddenName(name: string): boolean {
  return name.startsWith(PUT_TEMP_PREFIX);
}

const MARKERS = new Set(['.ql_disablethumbnails', '.metadata_never_index']);

/**
 * Files whose mere existence tells Finder not to build Quick Look thumbnails or a
 * Spotlight index, both of which would download whole files. We answer them as empty
 * files wherever Finder asks, unless a real entry of that name exists.
 */
export function isFinderMarker(path: string): boolean {
  return MARKERS.has(path.slice(path.lastIndexOf('/') + 1));
}

/** The attributes of a virtual Finder marker: an empty, read-only file. */
export function markerAttr(): Attr {
  return { ino: 0, type: 'file', mode: 0o444, size: 0, mtimeMs: 0, ctimeMs: 0, atimeMs: 0, nlink: 1, uid: 0, gid: 0, hash: null, etag: '"finder-marker"', readonly: true };
}
