// fuse.*: the same commands on the vdfs mount, on local disk and on rclone mounts (cache off and full).
import { join } from 'node:path';
import { dropCaches, have, mbps, MiB, measure, sh, shOk, type BenchOptions, type Result, type Target } from './lib';
import type { Env } from './env';

interface Root { name: string; dir: string; writeDir: string; coldPrep?: () => Promise<void> }

export function fuseRoots(env: Env): Root[] {
  const roots: Root[] = [{ name: 'vdfs', dir: env.vdfs!.mnt, writeDir: join(env.vdfs!.mnt, 'w') }, { name: 'local', dir: env.data, writeDir: join(env.data, 'wb') }];
  if (env.rcOff) roots.push({ name: 'rclone-off', dir: env.rcOff.mnt!, writeDir: join(env.rcOff.mnt!, 'wb') });
  if (env.rcFull) {
    const full = env.rcFull as typeof env.rcFull & { restart(): Promise<void> };
    roots.push({ name: 'rclone-full', dir: full.mnt!, writeDir: join(full.mnt!, 'wb'), coldPrep: () => full.restart() });
  }
  return roots;
}

const targets = (roots: Root[], run: (r: Root, rep: number) => Promise<number | null> | number | null): Target[] =>
  roots.map((r) => ({ name: r.name, run: (rep: number) => run(r, rep) }));

function dd(file: string, bytes: number): number {
  const r = shOk(`dd if=${file} of=/dev/null bs=1M 2>&1`, { timeoutMs: 600_000 });
  const got = /^(\d+) bytes/m.exec(r.stdout);
  if (!got || Number(got[1]) !== bytes) throw new Error(`dd read ${got?.[1]} bytes of ${bytes}: ${r.stdout.slice(-300)}`);
  return mbps(bytes, r.seconds);
}

export async function fuseBench(env: Env, o: BenchOptions): Promise<Result[]> {
  const roots = fuseRoots(env);
  const big = env.bigBytes;
  const out: Result[] = [];
  const size = `${env.sizes.bigMiB} MiB`;

  out.push(await measure(o, { name: 'fuse.seqread.cold', unit: 'MB/s', better: 'higher', note: `dd bs=1M of a ${size} file after drop_caches (rclone full: fresh cache dir)` },
    targets(roots, async (r) => { if (r.coldPrep) await r.coldPrep(); dropCaches(); return dd(join(r.dir, env.bigRel), big); })));

  out.push(await measure(o, { name: 'fuse.seqread.warm', unit: 'MB/s', better: 'higher', note: `dd bs=1M of the same ${size} file, read once just before` },
    targets(roots, (r) => { dd(join(r.dir, env.bigRel), big); return dd(join(r.dir, env.bigRel), big); })));

  const secs = o.quick ? 5 : 15;
  if (have('fio')) {
    out.push(await measure(o, { name: 'fuse.randread', unit: 'IOPS', better: 'higher', note: `fio randread bs=4k iodepth=1 psync direct=1, ${secs} s on the ${size} file (local: direct to the device; FUSE servers read their backing file from the page cache)` },
      targets(roots, (r) => {
        const res = sh(`fio --name=rr --filename=${join(r.dir, env.bigRel)} --readonly --rw=randread --bs=4k --iodepth=1 --ioengine=psync --direct=1 --runtime=${secs} --time_based --output-format=json`, { timeoutMs: (secs + 60) * 1000 });
        if (res.code !== 0) throw new Error(`fio: ${res.stderr.slice(-300)}`);
        return (JSON.parse(res.stdout.slice(res.stdout.indexOf('{'))) as { jobs: Array<{ read: { iops: number } }> }).jobs[0].read.iops;
      })));
  }

  out.push(await measure(o, { name: 'fuse.stat', unit: 's', better: 'lower', note: `find -printf '%s %T@' over ${env.treeFiles} files in ${env.sizes.treeDirs} dirs, warm (second of two runs)` },
    targets(roots, (r) => {
      const cmd = `find ${join(r.dir, 'tree')} -printf '%s %T@\\n' | wc -l`;
      shOk(cmd);
      const res = shOk(cmd);
      if (Number(res.stdout.trim()) !== env.treeFiles + env.sizes.treeDirs + 1) throw new Error(`find saw ${res.stdout.trim()} entries`);
      return res.seconds;
    })));

  out.push(await measure(o, { name: 'fuse.readdir', unit: 's', better: 'lower', note: `ls -l of a ${env.sizes.dirEntries}-entry directory after drop_caches (the servers' own in-memory caches stay warm)` },
    targets(roots, (r) => {
      dropCaches();
      const res = shOk(`ls -l ${join(r.dir, 'dir10k')} | wc -l`);
      if (Number(res.stdout.trim()) !== env.sizes.dirEntries + 1) throw new Error(`ls -l saw ${res.stdout.trim()} lines`);
      return res.seconds;
    })));

  const wMiB = env.sizes.writeMiB;
  out.push(await measure(o, { name: 'fuse.write', unit: 'MB/s', better: 'higher', note: `dd if=/dev/zero bs=1M count=${wMiB} conv=fsync into a new file, then rm` },
    targets(roots, (r, rep) => {
      const file = join(r.writeDir, `write-${r.name}-${rep}.bin`);
      try {
        const res = shOk(`dd if=/dev/zero of=${file} bs=1M count=${wMiB} conv=fsync 2>&1`, { timeoutMs: 600_000 });
        return mbps(wMiB * MiB, res.seconds);
      } finally {
        sh(`rm -f ${file}`, { timeoutMs: 60_000 });
        sh('sleep 1'); // let vdfs re-hash the closed file before the next target runs
      }
    })));
  return out;
}
