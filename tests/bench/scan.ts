// scan.hash and scan.rescan: `vdfs scan` against b3sum and find, on the bench data, no daemon running.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { vdfs } from '../helpers/cli';
import { dropCaches, mbps, measure, sh, type BenchOptions, type Result } from './lib';
import type { Env } from './env';

export async function scanBench(env: Env, o: BenchOptions): Promise<Result[]> {
  const dirs = [join(env.data, 'big'), join(env.data, 'tree')];
  const bytes = Number(sh(`du -sb --apparent-size ${dirs.join(' ')} | awk '{s+=$1} END {print s}'`).stdout.trim());
  const scanHome = join(env.root, 'scan-home');
  const freshHome = () => {
    rmSync(scanHome, { recursive: true, force: true });
    for (const args of [
      ['init', '--name', 'scan'],
      ['location', 'add', 'big', dirs[0]],
      ['location', 'add', 'tree', dirs[1]],
    ]) {
      const r = vdfs(scanHome, args);
      if (r.code !== 0) throw new Error(`vdfs ${args.join(' ')}: ${r.stderr}`);
    }
  };
  const vdfsScan = () => {
    const t0 = process.hrtime.bigint();
    const r = vdfs(scanHome, ['scan', '--json'], { timeoutMs: 900_000 });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.code !== 0) throw new Error(`vdfs scan: ${r.stderr}`);
    return { s, summary: r.json<{ hashed: number; unchanged: number; files: number }>() };
  };
  const out: Result[] = [];

  out.push(
    await measure(
      o,
      {
        name: 'scan.hash',
        unit: 'MB/s',
        better: 'higher',
        cache: 'cold',
        note: `first scan of ${env.treeFiles} small files + one ${env.sizes.bigMiB} MiB file, cold page cache, fresh home; wall time of the whole vdfs process`,
      },
      [
        {
          name: 'vdfs',
          run: () => {
            freshHome();
            dropCaches();
            const { s, summary } = vdfsScan();
            if (summary.hashed < env.treeFiles) throw new Error(`hashed only ${summary.hashed}`);
            return mbps(bytes, s);
          },
        },
        {
          name: 'b3sum',
          run: () => {
            dropCaches();
            const r = sh(`find ${dirs.join(' ')} -type f -print0 | xargs -0 -n 4096 b3sum > /dev/null`, { timeoutMs: 900_000 });
            if (r.code !== 0) throw new Error(r.stderr);
            return mbps(bytes, r.seconds);
          },
        },
      ],
    ),
  );

  // Rescan: nothing changed since the last scan; warm page cache on both sides.
  freshHome();
  vdfsScan();
  out.push(
    await measure(
      o,
      {
        name: 'scan.rescan',
        unit: 's',
        better: 'lower',
        cache: 'warm',
        note: `rescan of ${env.treeFiles + 1} unchanged files, warm`,
      },
      [
        {
          name: 'vdfs',
          run: () => {
            const { s, summary } = vdfsScan();
            if (summary.hashed > 0) throw new Error(`rescan re-hashed ${summary.hashed} files`);
            return s;
          },
        },
        {
          name: 'find',
          run: () => {
            const r = sh(`find ${dirs.join(' ')} -printf '%p %s %T@ %i\\n' > /dev/null`);
            return r.code === 0 ? r.seconds : null;
          },
        },
      ],
    ),
  );
  rmSync(scanHome, { recursive: true, force: true });
  return out;
}
