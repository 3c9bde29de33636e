import { constants as C } from 'node:fs';
import type { OpenFlags } from '../vfs/types';

/** The VFS's open flags from the kernel's O_* bits (both FUSE adapters). Never throws. */
export function openFlags(flags: number): OpenFlags {
  const acc = flags & 3;
  return {
    write: acc === C.O_WRONLY || acc === C.O_RDWR,
    truncate: (flags & C.O_TRUNC) !== 0,
    append: (flags & C.O_APPEND) !== 0,
    create: (flags & C.O_CREAT) !== 0,
    exclusive: (flags & C.O_EXCL) !== 0,
  };
}
