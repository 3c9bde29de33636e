import { FsError, expectedError } from '../../core/fs-error';
import { splitPath } from '../../core/paths';
import type { Entry } from '../../index/entries';
import type { Location } from '../../index/locations';
import type { VfsHome } from './vfs-home';

/** A content hash as named under /.vdfs/by-hash (BLAKE3, lowercase hex). */
export const HASH_RE = /^[0-9a-f]{64}$/;

/** The reserved top-level name for virtual views (by-hash, ...). */
export const VDFS_DIR = '.vdfs';

/** What a virtual path names. */
export type Resolved = { kind: 'root' } | { kind: 'entry'; location: Location; entry: Entry; rel: string } | { kind: 'virtual'; parts: string[] };

/** Splits '/<location>/<rel>' into the location name and the relative path. Throws EINVAL. */
export function splitVirtual(vpath: string): { location?: string; rel: string; parts: string[] } {
  const parts = splitPath(vpath);
  return { location: parts[0], rel: parts.slice(1).join('/'), parts };
}

export function virtualPath(location: string, rel: string): string {
  return rel === '' ? `/${location}` : `/${location}/${rel}`;
}

/**
 * Resolves a virtual path against the index. Throws ENOENT when nothing is there,
 * EINVAL for a malformed path.
 */
export function resolveVirtual(home: VfsHome, vpath: string): Resolved {
  const { location, rel, parts } = splitVirtual(vpath);
  if (!location) return { kind: 'root' };
  if (location === VDFS_DIR) return { kind: 'virtual', parts: parts.slice(1) };
  const loc = home.locations.find(location);
  if (!loc) throw new FsError('ENOENT', `${vpath}: no location named ${JSON.stringify(location)}`);
  // vdfs's own state (home, cache, staging) inside a location is not part of it.
  if (home.hidden.hides(loc.uri, rel)) throw new FsError('ENOENT', `${vpath}: not in the index (vdfs state folder)`);
  const entry = home.entries.resolve(loc.id, rel);
  if (!entry) throw new FsError('ENOENT', `${vpath}: not in the index${loc.lastScan ? '' : ` (location ${loc.name} was never scanned: vdfs scan ${loc.name})`}`);
  return { kind: 'entry', location: loc, entry, rel };
}

/**
 * Resolves `name` inside an already resolved `parent` (one index query instead of a walk
 * from the location root). Same answers as resolveVirtual of the joined path: throws ENOENT
 * when nothing is there (or the parent is not a directory), EINVAL for a malformed name.
 */
export function resolveChild(home: VfsHome, parent: Resolved, name: string, vpath: string): Resolved {
  if (parent.kind !== 'entry') return resolveVirtual(home, vpath);
  const loc = parent.location;
  const rel = parent.rel === '' ? name : `${parent.rel}/${name}`;
  if (home.hidden.hides(loc.uri, rel)) throw expectedError('ENOENT', `${vpath}: not in the index (vdfs state folder)`);
  const entry = parent.entry.type === 'dir' ? home.entries.child(parent.entry.id, name) : undefined;
  if (!entry) throw expectedError('ENOENT', `${vpath}: not in the index`);
  return { kind: 'entry', location: loc, entry, rel };
}
