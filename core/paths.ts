import { FsError } from './fs-error';

const MAX_NAME_BYTES = 255;

/** Checks one path component: not empty, no '/', no NUL, not '.' or '..', at most 255 bytes. Throws EINVAL/ENAMETOOLONG. */
export function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..') throw new FsError('EINVAL', `invalid name ${JSON.stringify(name)}`);
  if (name.includes('/') || name.includes('\0')) throw new FsError('EINVAL', `name contains '/' or NUL: ${JSON.stringify(name)}`);
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new FsError('ENAMETOOLONG', `name longer than ${MAX_NAME_BYTES} bytes`);
}

/**
 * Splits a relative or absolute POSIX path into checked components. Empty components
 * and '.' are dropped; '..' is refused (never resolved) so no path can leave its root.
 * Throws EINVAL.
 */
export function splitPath(path: string): string[] {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    checkName(part);
    parts.push(part);
  }
  return parts;
}

/** Normalised relative path ('' for the root). Throws EINVAL. */
export function normalizeRel(path: string): string {
  return splitPath(path).join('/');
}

export function joinRel(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`;
}

export function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

export function baseName(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? rel : rel.slice(i + 1);
}
