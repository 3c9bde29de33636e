// cache.reread: a file read through the vdfs block cache, the second time, with the kernel's page cache dropped.
import { join } from 'node:path';
import { ddRead as dd, dropCaches, measure, type BenchOptions, type Result, type Target } from './lib';
import type { Env } from './env';

/**
 * Reads of a local location's file go straight to the real file, so the block cache is
 * exercised through /.vdfs/by-hash/<hash>, which always reads by content: block by block
 * through the cache, fetched from the best replica (here the local file) and verified.
 * The first read fills the cache; each measured read drops the kernel caches first, so it
 * is served by the vdfs block cache (disk tier, verified) and not by the kernel's copy.
 */
export async function cacheBench(env: Env, o: BenchOptions): Promise<Result[]> {
  const big = env.bigBytes;
  const byHash = join(env.vdfs!.mnt, '.vdfs', 'by-hash', env.bigHash);
  const targets: Target[] = [];
  let fill = 0;
  targets.push({
    name: 'vdfs',
    run: (rep) => {
      if (rep === 0) fill = dd(byHash, big);
      dropCaches();
      return dd(byHash, big);
    },
  });
  targets.push({
    name: 'local',
    run: () => {
      dropCaches();
      return dd(join(env.data, env.bigRel), big);
    },
  });
  if (env.rcFull) {
    const f = join(env.rcFull.mnt!, env.bigRel);
    targets.push({
      name: 'rclone-full',
      run: (rep) => {
        if (rep === 0) dd(f, big);
        dropCaches();
        return dd(f, big);
      },
    });
  }
  const r = await measure(
    o,
    {
      name: 'cache.reread',
      unit: 'MB/s',
      better: 'higher',
      cache: 'cold',
      note: `dd of /.vdfs/by-hash/<hash> of the ${env.sizes.bigMiB} MiB file, second read, after drop_caches (block cache on disk); rclone-full: its VFS cache; local: cold disk`,
    },
    targets,
  );
  r.note += `; first (filling) read through the block cache: ${Math.round(fill)} MB/s`;
  return [r];
}
