// The bench harness itself, at its tiny size: every figure is measured, the JSON has the
// published shape with raw samples and machine facts, and the report script and the SVG
// are generated from it. Values at this size mean nothing; only shape and consistency are checked.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers/cli';
import { FIGURE_NAMES } from './bench/figures';
import { summarize, type Result } from './bench/lib';
import { BEGIN, END, publish } from './bench/report';
import type { BenchDoc } from './bench/report-svg';

const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x);

function checkResult(t: Test, r: Result): void {
  t.match(r, { name: String, unit: String }, `${r.name}: name and unit`);
  t.ok(['higher', 'lower'].includes(r.better), `${r.name}: better`);
  t.ok(['cold', 'warm'].includes(r.cache), `${r.name}: cache is cold or warm`);
  if (r.cache === 'cold') t.equal(r.cacheDropped, true, `${r.name}: the caches were dropped for this cold figure`);
  t.ok(num(r.vdfs), `${r.name}: vdfs has a value (${r.vdfs})`);
  t.ok(Array.isArray(r.samples) && r.samples.length > 0 && r.samples.every(num), `${r.name}: vdfs raw samples`);
  for (const b of r.baselines) {
    t.ok(num(b.value) && b.samples.length > 0 && b.samples.every(num), `${r.name} / ${b.name}: value and raw samples`);
    const want = r.better === 'higher' ? r.vdfs! / b.value! : b.value! / r.vdfs!;
    t.ok(num(b.ratio) && Math.abs(b.ratio! - want) <= 0.01 * want + 0.01, `${r.name} / ${b.name}: ratio ${b.ratio} matches the medians (${want})`);
  }
}

t.test('a tiny bench run measures every figure and writes the published JSON shape', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755); // Apache's worker (www-data) must reach the bench data below it
  const [save, svg] = [join(dir, 'bench.json'), join(dir, 'bench.svg')];
  const run = spawnSync(process.execPath, [join(ROOT, 'dist', 'tests', 'bench', 'run.js'), '--size', 'tiny', '--reps', '1', '--json', '--save', save, '--svg', svg], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 540_000,
    maxBuffer: 1 << 26,
    env: { ...process.env, VDFS_BENCH_DIR: dir },
  });
  t.equal(run.status, 0, `bench exits 0\n${(run.stderr ?? '').slice(-3000)}`);
  const doc = JSON.parse(run.stdout) as BenchDoc;
  t.same(JSON.parse(readFileSync(save, 'utf8')), doc, '--save wrote the same document as --json');
  t.same(Object.keys(doc), ['commit', 'machine', 'results'], 'top level: {commit, machine, results}');
  const head = spawnSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  t.match(doc.commit, new RegExp(`^${head}(\\+dirty)?$`), 'the commit measured');
  for (const k of ['cpu', 'kernel', 'filesystem', 'node', 'rclone', 'apache', 'cacheDrop'])
    t.ok(typeof doc.machine[k] === 'string' && doc.machine[k], `machine.${k}: ${doc.machine[k]}`);
  const names = doc.results.map((r) => r.name);
  t.same([...names].sort(), [...FIGURE_NAMES].sort(), 'every figure, once');
  for (const r of doc.results) checkResult(t, r);
  const picture = readFileSync(svg, 'utf8');
  t.match(picture, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, 'the SVG is an SVG');
  t.match(picture, /1× \(equal\)/, 'the SVG marks 1×');
  for (const n of FIGURE_NAMES) t.ok(picture.includes(`>${n}<`), `the SVG draws ${n}`);

  // The report script rewrites only the generated region of the README, and the whole doc page.
  const readme = join(dir, 'README.md');
  writeFileSync(readme, `# title\n\nbefore\n${BEGIN}\nold table\n${END}\nafter\n`);
  const json = join(dir, 'bench-quick.json');
  copyFileSync(save, json);
  const page = join(dir, 'performance.md');
  publish({ quick: json, readme, doc: page });
  const text = readFileSync(readme, 'utf8');
  t.ok(text.startsWith(`# title\n\nbefore\n${BEGIN}\n`) && text.endsWith(`${END}\nafter\n`), 'text outside the region is kept');
  t.notMatch(text, /old table/, 'the region is replaced');
  for (const n of FIGURE_NAMES) {
    t.match(text, `| ${n}`, `README table has ${n}`);
    t.match(readFileSync(page, 'utf8'), `**${n}**`, `performance.md explains ${n}`);
  }
  t.equal(readFileSync(join(dir, 'bench-quick.svg'), 'utf8'), picture, 'the script re-draws the same SVG from the JSON');
});

t.test('a cold figure whose caches were not dropped is withheld, not printed warm', async (t) => {
  const o = { size: 'tiny' as const, quick: true, json: true, reps: 1, log: () => {} };
  const r = summarize(o, { name: 'x.cold', unit: 's', better: 'lower', cache: 'cold' }, ['vdfs', 'local'], { vdfs: [1, 2, 3], local: [2, 3, 4] }, {}, false);
  t.equal(r.cacheDropped, false);
  t.equal(r.vdfs, null);
  t.equal(r.baselines[0].value, null);
  t.same(r.samples, [1, 2, 3], 'the raw samples stay');
  t.match(r.note, /NOT COLD/);
  const w = summarize(o, { name: 'x.cold', unit: 's', better: 'lower', cache: 'cold' }, ['vdfs', 'local'], { vdfs: [1, 2, 3], local: [2, 3, 4] }, {}, true);
  t.equal(w.vdfs, 2);
  t.equal(w.baselines[0].ratio, 1.5);
});

t.test('a missing tool stops the bench before it starts, naming the tool and its package', async (t) => {
  const bin = tempDir(t);
  // Everything the bench checks for except fio, found through a PATH of symlinks.
  for (const b of ['bash', 'sh', 'curl', 'dd', 'b3sum', 'git', 'tar', 'find', 'fusermount', 'fincore', 'rclone']) {
    const p = spawnSync('bash', ['-c', `command -v ${b}`], { encoding: 'utf8' }).stdout.trim();
    if (p) symlinkSync(p, join(bin, b));
  }
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'tests', 'bench', 'run.js'), '--size', 'tiny', '--json'], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, PATH: bin },
  });
  t.equal(r.status, 1, 'exit 1');
  t.match(r.stderr, /missing tools: fio \(Debian package fio\)/, 'names fio and its package');
  t.equal(r.stdout, '', 'no JSON: nothing was measured');
});
