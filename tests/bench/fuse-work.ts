// fuse.* writes and user workloads: dd writes, untar and rsync -a of a source tree, git status, 4 parallel
// readers. A write's clock stops when its bytes are in their final place (the backing folder),
// not when the FUSE server accepted them; "accepted" is reported beside it.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { dropCaches, mbps, MiB, measure, quiesce, sh, shOk, summarize, until, warmFreePages, type BenchOptions, type Result } from './lib';
import type { Env } from './env';
import { targets, type Root } from './fuse';

const size = (f: string) => (existsSync(f) ? statSync(f).size : -1);

/** The long-lived FUSE servers, whose background work (indexing, uploading) must end before a timed run. */
const serverPids = (env: Env) => [env.vdfs?.pid, env.rcOff?.pid, env.rcFull?.pid];

/** Files and bytes under a folder (find), for "every file of the tarball has landed". */
function tally(dir: string): { files: number; bytes: number } {
  const r = sh(`find ${dir} -type f -printf '%s\\n' 2>/dev/null | awk '{n++; s+=$1} END {print n+0, s+0}'`, { timeoutMs: 120_000 });
  const [files, bytes] = r.stdout.trim().split(' ').map(Number);
  return { files, bytes };
}

async function writeFigures(env: Env, o: BenchOptions, roots: Root[]): Promise<Result[]> {
  const wMiB = env.sizes.writeMiB;
  const bytes = wMiB * MiB;
  const accepted: Record<string, number[]> = {};
  const final = await measure(
    o,
    {
      name: 'fuse.write',
      unit: 'MB/s',
      better: 'higher',
      cache: 'warm',
      durability: 'until the whole file is in its final place (the backing folder), after fsync',
      note: `dd if=/dev/zero bs=1M count=${wMiB} conv=fsync into a new file; the clock stops when the backing file has every byte (rclone full uploads from its cache after --vfs-write-back, 5 s)`,
    },
    targets(roots, async (r, rep) => {
      const name = `write-${r.name}-${rep}.bin`;
      // Not timed: vdfs re-hashes a closed file (about a second of CPU per GiB) and rclone full
      // uploads from its cache; no target runs while a server is still busy with the last one's.
      await quiesce(serverPids(env));
      warmFreePages(env.root, wMiB);
      const t0 = process.hrtime.bigint();
      try {
        const res = shOk(`dd if=/dev/zero of=${join(r.writeDir, name)} bs=1M count=${wMiB} conv=fsync 2>&1`, { timeoutMs: 600_000 });
        (accepted[r.name] ??= []).push(mbps(bytes, res.seconds));
        await until(
          () => size(join(r.finalDir, name)) === bytes,
          600_000,
          () => `${join(r.finalDir, name)} has ${size(join(r.finalDir, name))} of ${bytes} bytes`,
        );
        const secs = Number(process.hrtime.bigint() - t0) / 1e9;
        return mbps(bytes, secs);
      } finally {
        sh(`rm -f ${join(r.writeDir, name)}`, { timeoutMs: 60_000 });
      }
    }),
  );
  const acc = summarize(
    o,
    {
      name: 'fuse.write.accepted',
      unit: 'MB/s',
      better: 'higher',
      cache: 'warm',
      durability: 'until dd conv=fsync returned (rclone full: bytes in its cache, not yet in place)',
      note: 'the same runs as fuse.write, clock stopped when dd returned',
    },
    roots.map((r) => r.name),
    accepted,
  );
  return [final, acc];
}

/**
 * A write workload of small files (`run` writes them into the new folder `dest`), timed until
 * the target's backing folder holds all `files` and `bytes`. Every run's tree is removed after
 * the last run, not after its own: on ext4 without a journal (this machine's disk), inode
 * allocation skips inodes freed in the last 60-360 s and reads each one's inode-table block to
 * find out, so a tar x right after removing 20,000 files took 3-15 s instead of 0.2-0.7 s,
 * charged to whichever target came next (docs/performance.md).
 */
async function landedFigure(
  env: Env,
  o: BenchOptions,
  roots: Root[],
  spec: Parameters<typeof measure>[1],
  files: number,
  bytes: number,
  run: (dest: string) => void,
  check?: (dest: string) => void,
): Promise<Result> {
  const made: string[] = [];
  try {
    return await measure(
      o,
      spec,
      targets(roots, async (r, rep) => {
        const name = `${spec.name.replace('fuse.', '')}-${r.name}-${rep}`;
        // Not timed: the servers' work after the last run's clock stopped (vdfs indexing and hashing
        // 20,000 files, rclone uploading from its cache) would slow this target.
        await quiesce(serverPids(env));
        made.push(join(r.writeDir, name));
        const t0 = process.hrtime.bigint();
        run(join(r.writeDir, name));
        await until(
          () => {
            const t = tally(join(r.finalDir, name));
            return t.files === files && t.bytes === bytes;
          },
          1_200_000,
          () => `${join(r.finalDir, name)}: ${JSON.stringify(tally(join(r.finalDir, name)))} of ${files} files, ${bytes} bytes`,
        );
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        check?.(join(r.writeDir, name));
        return seconds;
      }),
    );
  } finally {
    for (const dir of made) sh(`rm -rf ${dir}`, { timeoutMs: 1_200_000 });
  }
}

async function untarFigure(env: Env, o: BenchOptions, roots: Root[]): Promise<Result> {
  const files = env.sizes.untarFiles;
  const bytes = Number(shOk(`tar tvf ${env.tarball} | awk '$1 !~ /^d/ {s+=$3} END {print s+0}'`).stdout.trim());
  return landedFigure(
    env,
    o,
    roots,
    {
      name: 'fuse.untar',
      unit: 's',
      better: 'lower',
      cache: 'warm',
      durability: 'until every file is in its final place (the backing folder)',
      note: `tar xf of a tarball of ${files} small source files (200 B to 8 KiB; the tarball in the page cache) into a new folder; the clock stops when the backing folder holds every file and byte`,
    },
    files,
    bytes,
    (dest) => shOk(`mkdir ${dest} && tar xf ${env.tarball} -C ${dest}`, { timeoutMs: 1_200_000 }),
  );
}

/**
 * `rsync -a` into the mount: each file written under a temporary name, its mode and times set
 * by name, then renamed. Checked afterwards (not timed) by a dry run comparing sizes and times.
 */
async function rsyncFigure(env: Env, o: BenchOptions, roots: Root[]): Promise<Result> {
  const files = env.sizes.rsyncFiles;
  const bytes = tally(env.rsyncSrc).bytes;
  return landedFigure(
    env,
    o,
    roots,
    {
      name: 'fuse.rsync',
      unit: 's',
      better: 'lower',
      cache: 'warm',
      durability: 'until every file is in its final place (the backing folder)',
      note: `rsync -a of ${files} small source files (200 B to 8 KiB, in the page cache) into a new folder; the clock stops when the backing folder holds every file and byte; sizes and mtimes then checked by rsync --dry-run`,
    },
    files,
    bytes,
    (dest) => shOk(`rsync -a ${env.rsyncSrc}/ ${dest}/`, { timeoutMs: 1_200_000 }),
    (dest) => {
      // Folder times are left out: rclone's mount does not keep them.
      const left = shOk(`rsync -rlt --dry-run --itemize-changes ${env.rsyncSrc}/ ${dest}/ | grep -v '^\\.d' || true`, { timeoutMs: 600_000 }).stdout.trim();
      if (left) throw new Error(`rsync -a into ${dest} left files with other sizes or times: ${left.split('\n').slice(0, 3).join('; ')}`);
    },
  );
}

async function gitFigures(env: Env, o: BenchOptions, roots: Root[]): Promise<Result[]> {
  const status = (r: Root) => {
    const res = shOk(`git -c safe.directory='*' -C ${join(r.dir, 'repo')} status --porcelain`, { timeoutMs: 600_000 });
    if (res.stdout.trim() !== '') throw new Error(`git status is not clean: ${res.stdout.slice(0, 200)}`);
    return res.seconds;
  };
  const what = `git status in a committed repository of ${env.sizes.gitFiles} files (core.checkStat minimal, so one index is clean through every mount; output checked empty)`;
  return [
    await measure(
      o,
      { name: 'fuse.gitstatus.cold', unit: 's', better: 'lower', cache: 'cold', note: `${what}, after drop_caches (the servers' own in-memory caches stay warm)` },
      targets(roots, (r) => {
        dropCaches();
        return status(r);
      }),
    ),
    await measure(
      o,
      { name: 'fuse.gitstatus.warm', unit: 's', better: 'lower', cache: 'warm', note: `${what}, second of two back-to-back runs` },
      targets(roots, (r) => {
        status(r);
        return status(r);
      }),
    ),
  ];
}

async function parallelFigure(env: Env, o: BenchOptions, roots: Root[]): Promise<Result> {
  const each = env.sizes.parallelMiB * MiB;
  return measure(
    o,
    {
      name: 'fuse.parallel',
      unit: 'MB/s',
      better: 'higher',
      cache: 'cold',
      note: `4 concurrent dd bs=1M readers of 4 different ${env.sizes.parallelMiB} MiB files after drop_caches (rclone full: restarted with an empty cache dir); total bytes / wall time`,
    },
    targets(roots, async (r) => {
      await quiesce(serverPids(env)); // not timed: vdfs forgetting the untar's removed trees (rm -rf)
      if (r.coldPrep) await r.coldPrep();
      dropCaches();
      const cmd = [0, 1, 2, 3].map((i) => `(dd if=${join(r.dir, 'par', `p${i}.bin`)} of=/dev/null bs=1M 2>&1 | grep -o '^[0-9]* bytes') &`).join(' ') + ' wait';
      const res = shOk(cmd, { timeoutMs: 900_000 });
      const got = res.stdout
        .trim()
        .split('\n')
        .map((l) => Number(l.split(' ')[0]));
      if (got.length !== 4 || got.some((b) => b !== each)) throw new Error(`parallel readers got ${got.join(', ')} bytes, not 4 x ${each}`);
      return mbps(4 * each, res.seconds);
    }),
  );
}

export async function fuseWorkBench(env: Env, o: BenchOptions, roots: Root[]): Promise<Result[]> {
  const out: Result[] = [];
  out.push(...(await writeFigures(env, o, roots)));
  out.push(await untarFigure(env, o, roots));
  out.push(await rsyncFigure(env, o, roots));
  out.push(...(await gitFigures(env, o, roots)));
  out.push(await parallelFigure(env, o, roots));
  return out;
}
