import t from 'tap';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, until, vdfsOk } from './helpers/cli';
import { startMount } from './helpers/mount';

const threads = (pid: number) => readdirSync(`/proc/${pid}/task`).length;

// The start-up rescans of every local location run at once. Each had a worker pool of its own,
// two threads per location (a daemon over 7 locations ran 28 threads where it idles with 16,
// ~100 MB more at its peak); they now share one pool, of at most two threads.
t.test('the start-up rescans of many locations share one pool of worker threads', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const LOCATIONS = 6;
  const FILES = 400;
  vdfsOk(home, ['init']);
  for (let l = 0; l < LOCATIONS; l++) {
    const src = join(dir, `src${l}`);
    mkdirSync(src);
    for (let f = 0; f < FILES; f++) writeFileSync(join(src, `f${f}`), `${l}/${f}\n`.repeat(200));
    vdfsOk(home, ['location', 'add', `l${l}`, src]);
  }
  vdfsOk(home, ['scan']);
  // Changed while no daemon ran: every rescan has files to hash again, so they overlap.
  for (let l = 0; l < LOCATIONS; l++) for (let f = 0; f < FILES; f++) utimesSync(join(dir, `src${l}`, `f${f}`), 1_500_000_000, 1_500_000_000 + f);
  const m = await startMount(home, join(dir, 'mnt'));
  t.teardown(() => m.stop());
  const pid = m.proc.pid!;
  const done = () => (m.output().match(/start-up rescan done/g) ?? []).length;
  const doneAtStart = done();
  let peak = threads(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, threads(pid))), 5);
  const finished = await until(() => done() === LOCATIONS, 60_000);
  clearInterval(sampler);
  t.ok(finished, `every start-up rescan finished (${done()} of ${LOCATIONS})`);
  t.ok(doneAtStart < LOCATIONS, `the threads were counted while rescans ran (${doneAtStart} had finished when counting began)`);
  // Right after the rescans the shared pool's threads are still there (they stop after 10 s idle).
  const settled = threads(pid);
  t.ok(peak <= settled + 2, `no more threads during the rescans than after them, give or take two (peak ${peak}, after ${settled})`);
  t.end();
});
