import { ensurePrivateDir } from '../core/private-files';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BlockCache } from '../cache/block-cache';
import { WRITE_QUEUE_BYTES } from '../cache/block-pool';
import { openCacheStore } from '../index/cache-store';
import type { Home } from './home';
import type { BlockStore } from '../mount/vfs/blob-reader';

export interface OpenedBlockStore extends BlockStore {
  /** The cache, when this process owns it; undefined when another vdfs process does. */
  cache?: BlockCache;
  close(): Promise<void>;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `cache.lock` in the cache dir; returns its holder's pid when a live process has it. */
function lockCache(dir: string): { release(): void } | { holder: number } {
  // Refuses a cache dir another user owns (they could plant links in it), makes ours 0700.
  ensurePrivateDir(dir);
  const file = join(dir, 'cache.lock');
  for (let i = 0; i < 3; i++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return { release: () => rmSync(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim() || 0);
      if (pid && pid !== process.pid && pidAlive(pid)) return { holder: pid };
      rmSync(file, { force: true });
    }
  }
  return { holder: -1 };
}

/**
 * The home's block cache, owned by one process at a time (its open() tidies the directory,
 * which must not happen under a running daemon). A second process (`vdfs cat` next to
 * `vdfs mount`) reads through without storing; every block is still verified by the reader.
 */
export async function openBlockStore(home: Home): Promise<OpenedBlockStore> {
  const lock = lockCache(home.cacheDir);
  if ('holder' in lock) return { get: (_key, fetch) => fetch(), keep: () => undefined, close: async () => undefined };
  try {
    // Write-behind: a reader never waits for the cache disk (at most 32 MiB queued, then blocks go
    // uncached). 8 MiB was tried for memory: on this loaded 2-core machine a 64 MiB stream then
    // left 18 of its blocks uncached (docs/read-pipeline.md "Memory while streaming").
    const cache = await BlockCache.open({
      dir: home.cacheDir,
      maxBytes: home.config['cache.maxSize'],
      memoryBytes: home.config['cache.memorySize'],
      writeQueueBytes: WRITE_QUEUE_BYTES,
      openIndex: openCacheStore,
    });
    return {
      cache,
      get: (key, fetch, expected) => cache.get(key, fetch, expected),
      take: (key, fetch, expected) => cache.take(key, fetch, expected),
      has: (key) => cache.has(key),
      verifiedFile: (key) => cache.verifiedFile(key),
      check: (key) => cache.check(key),
      onRemoved: (fn) => cache.onRemoved(fn),
      keep: (key, data, sum) => cache.keep(key, data, sum),
      async close() {
        await cache.close();
        lock.release();
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}
