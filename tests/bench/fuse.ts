// fuse.* reads: the same commands on the vdfs mount, on local disk and on rclone mounts (cache
// off and full), every target in the same cache state. Writes and user workloads: fuse-work.ts.
import { join } from 'node:path';
import { ddRead, dropCaches, dropFilePages, fio, measure, shOk, whileMapped, type BenchOptions, type Result, type Target } from './lib';
import type { Env } from './env';
import { fuseWorkBench } from './fuse-work';
import { passthroughFigure } from './fuse-passthrough';

/** A FUSE target (or local disk): where to read, where to write, and where written bytes end up. */
export interface Root {
  name: string;
  dir: string;
  writeDir: string;
  finalDir: string;
  coldPrep?: () => Promise<void>;
}

export function fuseRoots(env: Env): Root[] {
  const wb = join(env.data, 'wb');
  const roots: Root[] = [
    { name: 'vdfs', dir: env.vdfs!.mnt, writeDir: join(env.vdfs!.mnt, 'w'), finalDir: join(env.data, 'w') },
    { name: 'local', dir: env.data, writeDir: wb, finalDir: wb },
  ];
  if (env.rcOff) roots.push({ name: 'rclone-off', dir: env.rcOff.mnt!, writeDir: join(env.rcOff.mnt!, 'wb'), finalDir: wb });
  if (env.rcFull) {
    const full = env.rcFull as typeof env.rcFull & { restart(): Promise<void> };
    roots.push({ name: 'rclone-full', dir: full.mnt!, writeDir: join(full.mnt!, 'wb'), finalDir: wb, coldPrep: () => full.restart() });
  }
  return roots;
}

export const targets = (roots: Root[], run: (r: Root, rep: number) => Promise<number | null> | number | null): Target[] =>
  roots.map((r) => ({ name: r.name, run: (rep: number) => run(r, rep) }));

/** Kernel page-cache pages of a file still resident (fincore), to prove a drop worked. */
function residentBytes(file: string): number {
  return Number(shOk(`fincore -b -n -o RES ${file}`).stdout.trim());
}

/** The file a target's server reads the big file from: rclone full its cache copy, the others the file in the data folder. */
function servedCopy(env: Env, r: Root): string {
  return r.name === 'rclone-full' ? join(env.root, 'rclone-cache-full', 'vfs', 'local', env.data, env.bigRel) : join(env.data, env.bigRel);
}

export async function fuseBench(env: Env, o: BenchOptions): Promise<Result[]> {
  const roots = fuseRoots(env);
  const big = env.bigBytes;
  const out: Result[] = [];
  const size = `${env.sizes.bigMiB} MiB`;
  const bigOf = (r: Root) => join(r.dir, env.bigRel);

  out.push(
    await measure(
      o,
      {
        name: 'fuse.seqread.cold',
        unit: 'MB/s',
        better: 'higher',
        cache: 'cold',
        note: `dd bs=1M of a ${size} file after drop_caches (rclone full: restarted with an empty cache dir)`,
      },
      targets(roots, async (r) => {
        if (r.coldPrep) await r.coldPrep();
        dropCaches();
        return ddRead(bigOf(r), big);
      }),
    ),
  );

  out.push(
    await measure(
      o,
      {
        name: 'fuse.seqread.warm.pagecache',
        unit: 'MB/s',
        better: 'higher',
        cache: 'warm',
        note: `dd bs=1M of the same ${size} file, read through the same target just before; whatever each target leaves in the kernel page cache counts (vdfs keeps it across opens, rclone drops it)`,
      },
      targets(roots, (r) => {
        ddRead(bigOf(r), big);
        return ddRead(bigOf(r), big);
      }),
    ),
  );

  out.push(
    await measure(
      o,
      {
        name: 'fuse.seqread.warm.served',
        unit: 'MB/s',
        better: 'higher',
        cache: 'warm',
        note: `the same read with the file's own page-cache pages dropped first (fadvise DONTNEED, checked with fincore): every byte goes through the server, whose backing file is warm; local: a warm re-read of that backing file`,
      },
      targets(roots, (r) => {
        ddRead(bigOf(r), big);
        if (r.name !== 'local') {
          dropFilePages(bigOf(r));
          const left = residentBytes(bigOf(r));
          if (left > 0) throw new Error(`${left} bytes of the file stayed in the page cache after fadvise DONTNEED`);
        }
        return ddRead(bigOf(r), big);
      }),
    ),
  );

  const secs = env.sizes.randSecs;
  const fioNote = `fio randread bs=4k iodepth=1 psync (buffered, fadvise random), ${secs} s on the ${size} file`;
  out.push(
    await measure(
      o,
      {
        name: 'fuse.randread.cold',
        unit: 'IOPS',
        better: 'higher',
        cache: 'cold',
        note: `${fioNote}, after drop_caches on every target (rclone full: restarted with an empty cache dir)`,
      },
      targets(roots, async (r) => {
        if (r.coldPrep) await r.coldPrep();
        dropCaches();
        return fio(bigOf(r), secs, '--direct=0 --invalidate=1');
      }),
    ),
  );
  out.push(
    await measure(
      o,
      {
        name: 'fuse.randread.warm',
        unit: 'IOPS',
        better: 'higher',
        cache: 'warm',
        note: `${fioNote}, the file read whole through the same target just before and not invalidated`,
      },
      targets(roots, (r) => {
        ddRead(bigOf(r), big);
        return fio(bigOf(r), secs, '--direct=0 --invalidate=0');
      }),
    ),
  );

  out.push(
    await measure(
      o,
      {
        name: 'fuse.randread.served',
        unit: 'IOPS',
        better: 'higher',
        cache: 'warm',
        note: `fio randread bs=4k iodepth=1 psync --direct=1, ${secs} s on the ${size} file read whole through the same target just before: every read is one round trip to the server, whose own copy (the backing file, rclone's cache file) is warm and kept in the page cache during the run (mapped by another process: this machine's DAMON reclaim pages a file read once out within seconds), so this is the cost of the binding; local: the same O_DIRECT reads of the disk itself`,
      },
      targets(roots, (r) => {
        ddRead(bigOf(r), big);
        return whileMapped([servedCopy(env, r)], () => fio(bigOf(r), secs, '--direct=1'));
      }),
    ),
  );
  out.push(await passthroughFigure(env, o));

  const findCmd = (r: Root) => `find ${join(r.dir, 'tree')} -printf '%s %T@\\n' | wc -l`;
  const findOk = (res: { stdout: string; seconds: number }) => {
    if (Number(res.stdout.trim()) !== env.treeFiles + env.sizes.treeDirs + 1) throw new Error(`find saw ${res.stdout.trim()} entries`);
    return res.seconds;
  };
  const same = 'every mount with 10 s attr/entry timeouts (rclone --attr-timeout 10s --dir-cache-time 1h)';
  out.push(
    await measure(
      o,
      {
        name: 'fuse.stat.cold',
        unit: 's',
        better: 'lower',
        cache: 'cold',
        note: `find -printf '%s %T@' over ${env.treeFiles} files in ${env.sizes.treeDirs} dirs after drop_caches (the servers' own in-memory caches stay warm); ${same}`,
      },
      targets(roots, (r) => {
        dropCaches();
        return findOk(shOk(findCmd(r)));
      }),
    ),
  );
  out.push(
    await measure(
      o,
      { name: 'fuse.stat.warm', unit: 's', better: 'lower', cache: 'warm', note: `the same find, second of two back-to-back runs; ${same}` },
      targets(roots, (r) => {
        shOk(findCmd(r));
        return findOk(shOk(findCmd(r)));
      }),
    ),
  );

  out.push(
    await measure(
      o,
      {
        name: 'fuse.readdir',
        unit: 's',
        better: 'lower',
        cache: 'cold',
        note: `ls -l of a ${env.sizes.dirEntries}-entry directory after drop_caches (the servers' own in-memory caches stay warm)`,
      },
      targets(roots, (r) => {
        dropCaches();
        const res = shOk(`ls -l ${join(r.dir, 'dir10k')} | wc -l`);
        if (Number(res.stdout.trim()) !== env.sizes.dirEntries + 1) throw new Error(`ls -l saw ${res.stdout.trim()} lines`);
        return res.seconds;
      }),
    ),
  );

  out.push(...(await fuseWorkBench(env, o, roots)));
  return out;
}
