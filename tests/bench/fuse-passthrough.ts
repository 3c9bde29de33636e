// fuse.randread.passthrough: issue #15's "with passthrough: ≥ 0.8× the same fio run on the
// backing file". A second vdfs daemon, mounted with --passthrough, serves a location holding a
// hard link to the bench's big file; fio's O_DIRECT random reads through it go to the backing
// file in the kernel (the daemon sees the open, never a read), against the same fio on the file.
import { linkSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { vdfsOk } from '../helpers/cli';
import { startMount } from '../helpers/mount';
import { fio, measure, shOk, type BenchOptions, type Result } from './lib';
import type { Env } from './env';

/** The mount's counters (`getfattr -n user.vdfs.fuse`). */
function fuseCounters(mnt: string): Record<string, number> {
  return JSON.parse(shOk(`getfattr -n user.vdfs.fuse --only-values ${mnt}`).stdout) as Record<string, number>;
}

export async function passthroughFigure(env: Env, o: BenchOptions): Promise<Result> {
  const home = join(env.root, 'pt-home');
  const data = join(env.root, 'pt-data');
  const mnt = join(env.root, 'mnt-pt');
  const backing = join(env.data, env.bigRel);
  mkdirSync(data);
  mkdirSync(mnt);
  linkSync(backing, join(data, 'big.bin'));
  vdfsOk(home, ['init', '--name', 'bench-pt']);
  vdfsOk(home, ['location', 'add', 'pt', data]);
  vdfsOk(home, ['scan']);
  const mount = await startMount(home, mnt, ['--passthrough'], 60_000);
  const secs = env.sizes.randSecs;
  try {
    if (fuseCounters(mnt).passthrough !== 1) throw new Error('kernel passthrough was not negotiated (it needs root and Linux >= 6.9)');
    const file = join(mnt, 'pt', 'big.bin');
    return await measure(
      o,
      {
        name: 'fuse.randread.passthrough',
        unit: 'IOPS',
        better: 'higher',
        cache: 'warm',
        note: `fio randread bs=4k iodepth=1 psync --direct=1, ${secs} s on the ${env.sizes.bigMiB} MiB file of a local location mounted with --passthrough (the kernel reads the backing file itself; every open checked to be passed through); local: the same fio on the backing file`,
      },
      [
        {
          name: 'vdfs',
          run: () => {
            const before = fuseCounters(mnt).passthroughOpens;
            const iops = fio(file, secs, '--direct=1');
            if (fuseCounters(mnt).passthroughOpens <= before) throw new Error("fio's open was not passed through to the backing file");
            return iops;
          },
        },
        { name: 'local', run: () => fio(backing, secs, '--direct=1') },
      ],
    );
  } finally {
    await mount.stop();
  }
}
