import { FsError } from '../../core/fs-error';
import { checkName } from '../../core/paths';
import type { Entry } from '../../index/entries';
import type { Location } from '../../index/locations';
import type { VfsHome } from './vfs-home';
import type { ProviderFeatures } from '../../core/provider';
import { splitVirtual, VDFS_DIR } from './namespace';
import type { Resolver } from './resolver';

/** Where a new or existing entry of a change goes. */
export interface Target {
  location: Location;
  parent: Entry;
  parentRel: string;
  name: string;
  rel: string;
  existing?: Entry;
}

/** A writable source without files on this machine (a cloud bucket or drive): its changes are staged and uploaded. */
export function isWritableRemote(f: ProviderFeatures): boolean {
  return f.write && !f.localFiles;
}

/** Writes to this location are staged in the home and uploaded after close (cloud, or a write-back disk). */
export function isStaged(loc: Location, f: ProviderFeatures): boolean {
  return isWritableRemote(f) || (f.localFiles && !!loc.options.writeBack);
}

/**
 * Resolves the target of a change. Throws EROFS (the root, /.vdfs, read-only or
 * non-writable locations), EBUSY (a location root itself), ENOENT (parent), ENOTDIR,
 * EINVAL/ENAMETOOLONG (bad name). `featuresOf` says what the location's provider supports.
 * `resolver`: the parent folder is taken from its cache when it has it (a location and a walk
 * of the path by SQL for every created file otherwise); the name itself is always read anew.
 */
export function resolveTarget(home: VfsHome, path: string, what: string, featuresOf: (loc: Location) => ProviderFeatures, resolver?: Pick<Resolver, 'resolve'>): Target {
  const { location, parts } = splitVirtual(path);
  if (!location || parts.length < 2) {
    const isLocation = !!location && !!home.locations.find(location);
    throw new FsError(isLocation ? 'EBUSY' : 'EROFS', `${what} ${path}: the root lists locations; manage them with vdfs location add/rm`);
  }
  const known = resolver ? cachedDir(resolver, parts) : undefined;
  const loc = known?.location ?? home.locations.find(location);
  if (!loc) throw new FsError(location === '.vdfs' ? 'EROFS' : 'ENOENT', `${what} ${path}: no location ${location}`);
  const name = parts[parts.length - 1];
  checkName(name);
  const parentRel = parts.slice(1, -1).join('/');
  const parent = known?.entry ?? (home.hidden.hides(loc.uri, parentRel) ? undefined : home.entries.resolve(loc.id, parentRel));
  if (!parent) throw new FsError('ENOENT', `${what} ${path}: parent directory does not exist`);
  if (parent.type !== 'dir') throw new FsError('ENOTDIR', `${what} ${path}: parent is not a directory`);
  if (loc.readonly) throw new FsError('EROFS', `${what} ${path}: location ${loc.name} is read-only`);
  const f = featuresOf(loc);
  if (!f.localFiles && !isWritableRemote(f)) throw new FsError('EROFS', `${what} ${path}: ${loc.kind} locations are read-only`);
  const rel = parentRel === '' ? name : `${parentRel}/${name}`;
  if (home.hidden.hides(loc.uri, rel)) throw new FsError('EACCES', `${what} ${path}: reserved for vdfs's own state`);
  return { location: loc, parent, parentRel, name, rel, existing: home.entries.child(parent.id, name) };
}

/** The folder holding the last of `parts` as the resolver has it, when it is an indexed folder of a location. */
function cachedDir(resolver: Pick<Resolver, 'resolve'>, parts: string[]): { location: Location; entry: Entry } | undefined {
  if (parts[0] === VDFS_DIR) return undefined;
  try {
    const r = resolver.resolve(`/${parts.slice(0, -1).join('/')}`);
    return r.kind === 'entry' && r.entry.type === 'dir' ? r : undefined;
  } catch {
    return undefined; // the walk by SQL below says what is missing
  }
}

/** What a chmod, chown or utimens changes: an entry, a location's root (its folder) included. */
export type EntryTarget = Pick<Target, 'location' | 'rel' | 'existing'>;

/**
 * Like resolveTarget, but a location's root is a target too (rsync -a sets the times of the
 * folder it copied into last; that answered EBUSY). Throws FsError (ENOENT, EROFS, EBUSY, ...).
 */
export function resolveEntryTarget(home: VfsHome, path: string, what: string, featuresOf: (loc: Location) => ProviderFeatures, resolver?: Pick<Resolver, 'resolve'>): EntryTarget {
  const { location, parts } = splitVirtual(path);
  const loc = location && parts.length === 1 ? home.locations.find(location) : undefined;
  if (!loc) return resolveTarget(home, path, what, featuresOf, resolver);
  if (loc.readonly) throw new FsError('EROFS', `${what} ${path}: location ${loc.name} is read-only`);
  return { location: loc, rel: '', existing: home.entries.root(loc.id) };
}

/**
 * The names a rename may not join, as rename(2) checks them before looking at types: a
 * directory moved inside itself (EINVAL), or a name moved onto one of its own ancestors, which
 * holds it and so is never empty (ENOTEMPTY, for a file as for a directory). The same rule for
 * every writer (local, write-back, cloud). With RENAME_NOREPLACE an existing target answers
 * EEXIST first, as on the disk. Throws FsError (EEXIST, EINVAL, ENOTEMPTY).
 */
export function checkRenameAncestry(a: Target, b: Target, from: string, to: string, noReplace: boolean): void {
  if (noReplace && b.existing) throw new FsError('EEXIST', `${to} already exists`);
  const inside = (x: string, y: string) => (y + '/').startsWith(x + '/');
  if (a.existing?.type === 'dir' && inside(a.rel, b.rel)) throw new FsError('EINVAL', `cannot move ${from} into itself`);
  if (inside(b.rel, a.rel)) throw new FsError('ENOTEMPTY', `${to} is not empty: it holds ${from}`);
}
