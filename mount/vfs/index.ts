import type { Logger } from 'pino';
import type { VfsHome } from './vfs-home';
import type { BlockStore } from './blob-reader';
import type { OpenProvider } from './replicas';
import { VfsCore } from './vfs-core';

export type { Vfs, Attr, DirEntry, OpenFlags, StatFs, DeadProp, NotedStat } from './types';
export type { BlockStore } from './blob-reader';
export { VfsCore } from './vfs-core';

/**
 * The filesystem core over an opened home. Content not on a reachable local disk goes through
 * `blocks`; with `uploads` the staged-write upload queue runs (the daemon's job).
 */
export async function createVfs(home: VfsHome, opts: { blocks: BlockStore; log?: Logger; uploads?: boolean; openProvider: OpenProvider }): Promise<VfsCore> {
  return new VfsCore(home, opts);
}
