import { FsError } from '../../core/fs-error';
import type { Replicas } from './replicas';
import type { Attr } from './types';

const XATTR_HASH = 'user.vdfs.hash';
const XATTR_REPLICAS = 'user.vdfs.replicas';
const XATTR_PINNED = 'user.vdfs.pinned';

/**
 * The value of one of vdfs's extended attributes of `path` (its content hash, the replicas
 * holding that content, whether it is pinned). `pinned` is asked only for that attribute.
 * Throws FsError ENODATA for any other name, or one the entry does not have.
 */
export function xattrValue(path: string, name: string, attr: Attr, replicas: Replicas, pinned: () => string | undefined): Buffer {
  if (name === XATTR_HASH && attr.hash) return Buffer.from(attr.hash);
  if (name === XATTR_REPLICAS && attr.hash) return Buffer.from(JSON.stringify(replicas.list(attr.hash)));
  const p = name === XATTR_PINNED ? pinned() : undefined;
  if (p !== undefined) return Buffer.from(p);
  throw new FsError('ENODATA', `${path} has no attribute ${name}`);
}
