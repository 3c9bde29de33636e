import type { Home } from '../home';
import type { BlockStore } from './blob-reader';
import { VfsCore } from './vfs-core';

export type { Vfs, Attr, DirEntry, OpenFlags, StatFs, DeadProp } from './types';
export type { BlockStore } from './blob-reader';
export { VfsCore } from './vfs-core';

/** The filesystem core over an opened home. Content not on a reachable local disk goes through `blocks`. */
export async function createVfs(home: Home, opts: { blocks: BlockStore }): Promise<VfsCore> {
  return new VfsCore(home, { blocks: opts.blocks });
}
