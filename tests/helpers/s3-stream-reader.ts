import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Test } from 'tap';
import { BlockCache } from '../../cache/block-cache';
import { WRITE_QUEUE_BYTES } from '../../cache/block-pool';
import { openCacheStore } from '../../index/cache-store';
import { VersionReader } from '../../mount/vfs/version-reader';
import { S3Provider } from '../../providers/s3/s3-provider';
import { tempDir } from './cli';
import { startS3Server } from './s3-server';

const MiB = 1 << 20;

/**
 * A random object of `size` bytes in a fresh s3rver, and the VersionReader a FUSE read of it
 * goes through (1 MiB blocks, a disk cache of `cacheBytes` with the daemon's write-behind queue,
 * no memory tier), all torn down with `t`. The queue as the daemon's (app/block-store.ts): at 32 MiB
 * a lagging cache disk held every slot of the block pool, and the stream's blocks overflowed it.
 */
export async function s3StreamReader(t: Test, size: number, cacheBytes: number): Promise<{ data: Buffer; cache: BlockCache; reader: VersionReader }> {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const data = randomBytes(size);
  await s3.put('big.bin', data);
  const p = new S3Provider({ bucket: s3.bucket, prefix: '', endpoint: s3.endpoint, region: 'us-east-1' });
  t.teardown(() => p.close());
  const cache = await BlockCache.open({ openIndex: openCacheStore, dir: join(tempDir(t), 'cache'), maxBytes: cacheBytes, memoryBytes: 0, writeQueueBytes: WRITE_QUEUE_BYTES });
  t.teardown(() => cache.close());
  const st = await p.stat('big.bin');
  const reader = new VersionReader(cache, () => p, { locationId: 1, rel: 'big.bin', version: st.version, size: st.size, label: '/s3/big.bin' }, MiB);
  return { data, cache, reader };
}
