/**
 * Scan speed against its baselines, side by side in one run, medians of N (default 3):
 *  (a) scan+hash of a mixed tree (a few big files + thousands of small ones)
 *      vs `find T -type f -print0 | xargs -0 b3sum`   (target: vdfs >= 0.8x the throughput)
 *  (b) rescan of an unchanged tree of 100,000 files
 *      vs `find T -printf '%s %T@\n'`                  (target: vdfs <= 2x the time)
 * Both through the real CLI (bin/vdfs), node start-up included.
 *
 *   npm run build && node dist/tests/bench/scan-bench.js [--runs 3] [--dir /tmp/vdfs-bench] [--big-mib 1536] [--small 4000]
 *
 * Trees are generated once under --dir and reused. Not part of `npm test`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const RUNS = Number(opt('runs', '3'));
const DIR = opt('dir', '/tmp/vdfs-bench');
const BIG_MIB = Number(opt('big-mib', '1536'));
const SMALL = Number(opt('small', '4000'));
const only = opt('only', 'ab');
const VDFS = resolve(__dirname, '..', '..', '..', 'bin', 'vdfs');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timed(cmd: string, argv: string[], opts: { shell?: boolean } = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], shell: opts.shell ?? false, maxBuffer: 1 << 26 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return s;
}

function vdfs(home: string, ...a: string[]): number {
  return timed(process.execPath, [VDFS, '--home', home, ...a]);
}

/** Mixed tree: 4 big files of BIG_MIB/4 and SMALL files of 1-256 KiB (sizes fixed by a seed). */
function mixedTree(): { root: string; bytes: number; files: number } {
  const root = join(DIR, 'mixed');
  const marker = join(DIR, `mixed-${BIG_MIB}-${SMALL}.done`);
  const chunk = randomBytes(1 << 20);
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const sizes = Array.from({ length: SMALL }, () => 1024 + Math.floor(rnd() * 255 * 1024));
  const bytes = sizes.reduce((a, b) => a + b, 0) + BIG_MIB * (1 << 20);
  if (existsSync(marker)) return { root, bytes, files: SMALL + 4 };
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  for (let b = 0; b < 4; b++) {
    const fd = openSync(join(root, `big-${b}.bin`), 'w');
    for (let m = 0; m < BIG_MIB / 4; m++) {
      chunk.writeUInt32LE(b * 1e6 + m, 0);
      writeSync(fd, chunk);
    }
    closeSync(fd);
  }
  sizes.forEach((size, i) => {
    const d = join(root, `d${i % 40}`, `e${i % 7}`);
    mkdirSync(d, { recursive: true });
    chunk.writeUInt32LE(0xfeed0000 + i, 0);
    writeFileSync(join(d, `small-${i}.dat`), chunk.subarray(0, size));
  });
  writeFileSync(marker, '');
  return { root, bytes, files: SMALL + 4 };
}

/** 100 directories x 1,000 small files. */
function manyTree(): string {
  const root = join(DIR, 'many');
  const marker = join(DIR, 'many.done');
  if (existsSync(marker)) return root;
  rmSync(root, { recursive: true, force: true });
  for (let d = 0; d < 100; d++) {
    mkdirSync(join(root, `dir-${d}`), { recursive: true });
    for (let f = 0; f < 1000; f++) writeFileSync(join(root, `dir-${d}`, `file-${f}.txt`), `${d}/${f}\n`);
  }
  writeFileSync(marker, '');
  return root;
}

function freshHome(name: string, root: string): string {
  const home = join(DIR, `home-${name}`);
  rmSync(home, { recursive: true, force: true });
  execFileSync(process.execPath, [VDFS, '--home', home, 'init']);
  execFileSync(process.execPath, [VDFS, '--home', home, 'location', 'add', 'bench', root]);
  return home;
}

const fmt = (x: number) => x.toFixed(3);

if (only.includes('a')) {
  const { root, bytes, files } = mixedTree();
  const b3: number[] = [];
  const vd: number[] = [];
  timed('sh', ['-c', `cat $(find ${root} -type f) > /dev/null`]); // warm the page cache for both
  for (let i = 0; i < RUNS; i++) {
    b3.push(timed('sh', ['-c', `find ${root} -type f -print0 | xargs -0 b3sum > /dev/null`]));
    const home = freshHome('mixed', root);
    vd.push(vdfs(home, 'scan'));
  }
  const mib = bytes / 2 ** 20;
  console.log(`(a) scan+hash of ${files} files, ${(mib / 1024).toFixed(2)} GiB, warm cache, medians of ${RUNS}`);
  console.log(`    b3sum (find|xargs): ${fmt(median(b3))} s  ${(mib / median(b3)).toFixed(0)} MiB/s   runs ${b3.map(fmt).join(' ')}`);
  console.log(`    vdfs scan:          ${fmt(median(vd))} s  ${(mib / median(vd)).toFixed(0)} MiB/s   runs ${vd.map(fmt).join(' ')}`);
  console.log(`    vdfs throughput / b3sum throughput = ${(median(b3) / median(vd)).toFixed(2)}x (target >= 0.8)`);
}

if (only.includes('b')) {
  const root = manyTree();
  const home = freshHome('many', root);
  vdfs(home, 'scan'); // the first scan hashes everything; what follows is the unchanged rescan
  const fd: number[] = [];
  const vd: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    fd.push(timed('sh', ['-c', `find ${root} -printf '%s %T@\\n' > /dev/null`]));
    vd.push(vdfs(home, 'scan'));
  }
  console.log(`(b) rescan of an unchanged tree of 100,000 files, warm cache, medians of ${RUNS}`);
  console.log(`    find -printf: ${fmt(median(fd))} s   runs ${fd.map(fmt).join(' ')}`);
  console.log(`    vdfs scan:    ${fmt(median(vd))} s   runs ${vd.map(fmt).join(' ')}`);
  console.log(`    vdfs / find = ${(median(vd) / median(fd)).toFixed(2)}x the time (target <= 2)`);
}
