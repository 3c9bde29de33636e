import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './helpers/cli';

// After a walk the survivors are scattered over the old space's pages: a plain full collection
// frees no page, so an idle daemon kept ~3x its live heap resident. fullGc(true) compacts.
// Run in a fresh Node process (the collector's state is process-wide), with the daemon's own
// GC settings (tuneGcForStreaming).
t.test('fullGc(true) gives back the pages a plain full collection keeps; fullGc() does not compact', (t) => {
  const script = `
    const { fullGc, tuneGcForStreaming } = require(${JSON.stringify(join(ROOT, 'dist', 'core', 'idle-gc.js'))});
    tuneGcForStreaming();
    let a = [];
    for (let i = 0; i < 400000; i++) a.push({ name: 'x' + i, n: i, b: BigInt(i), arr: [i, i + 1] });
    const keep = a.filter((_, i) => i % 20 === 0);
    a = null;
    const total = () => process.memoryUsage().heapTotal;
    const ok1 = fullGc();
    const plain = total();
    const again = (fullGc(), total());
    const ok2 = fullGc(true);
    const compacted = total();
    process.stdout.write(JSON.stringify({ ok1, ok2, plain, again, compacted, live: keep.length }));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout) as { ok1: boolean; ok2: boolean; plain: number; again: number; compacted: number; live: number };
  t.ok(m.ok1 && m.ok2, 'a full collection ran both times');
  t.equal(m.live, 20000, 'the survivors are still there');
  t.ok(m.again > m.plain * 0.8, `a second plain collection keeps the pages (${m.plain >> 20} -> ${m.again >> 20} MiB)`);
  t.ok(m.compacted < m.again * 0.6, `a compacting one gives most back (${m.again >> 20} -> ${m.compacted >> 20} MiB)`);
  t.end();
});

// V8 shrinks its young generation only in a full collection that sees a low allocation rate:
// the collection at the end of a burst keeps it (2 x 8 MiB resident for nothing), the one
// fullGc(true) arms for YOUNG_SHRINK_DELAY_MS later gives it back. V8's default growth here
// (the daemon's grows to 2 x 8 MiB with tuneGcForStreaming too, by start-up and bursts).
t.test('an idle-time fullGc(true) gives the young generation back a few seconds later', (t) => {
  const script = `
    const { getHeapSpaceStatistics } = require('node:v8');
    const g = require(${JSON.stringify(join(ROOT, 'dist', 'core', 'idle-gc.js'))});
    const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    let keep = [];
    for (let i = 0; i < 3e6; i++) { const o = { a: i, b: 'x' + i }; if (i % 10 === 0) keep.push(o); }
    const grown = young();
    keep = null;
    g.fullGc(true);
    const atOnce = young();
    const t0 = Date.now();
    const poll = setInterval(() => {
      if (g.youngShrinkStats.runs + g.youngShrinkStats.skipped === 0 && Date.now() - t0 < 30000) return;
      clearInterval(poll);
      process.stdout.write(JSON.stringify({ grown, atOnce, later: young(), stats: g.youngShrinkStats, ms: Date.now() - t0 }));
    }, 100);`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout) as { grown: number; atOnce: number; later: number; stats: { runs: number; skipped: number }; ms: number };
  t.ok(m.grown >= 8 << 20, `the burst grew the young generation (${(m.grown / 2 ** 20).toFixed(1)} MiB)`);
  t.ok(m.atOnce > m.grown / 2, `the collection at the burst's end keeps it (${(m.atOnce / 2 ** 20).toFixed(1)} MiB)`);
  t.same(m.stats, { runs: 1, skipped: 0 }, `one delayed collection ran (after ${m.ms} ms)`);
  t.ok(m.later < m.atOnce / 4, `it gave the young generation back (${(m.atOnce / 2 ** 20).toFixed(1)} -> ${(m.later / 2 ** 20).toFixed(1)} MiB)`);
  t.end();
});

// Node puts V8's flags back to their start-up values when a worker thread starts: the scan's
// hash workers undid tuneGcForStreaming, and the daemon's young generation grew to two 16 MiB
// semi-spaces again (docs/fuse.md "Peak memory"). The pool sets the flags again.
t.test("a worker thread's start does not undo tuneGcForStreaming: the young generation stays as it was", (t) => {
  const dist = (m: string) => JSON.stringify(join(ROOT, 'dist', m));
  const script = `
    const { getHeapSpaceStatistics } = require('node:v8');
    const { tuneGcForStreaming } = require(${dist('core/idle-gc.js')});
    const { WorkerPool } = require(${dist('index/worker-pool.js')});
    const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    tuneGcForStreaming();
    const before = young();
    const pool = new WorkerPool(${dist('index/scan-worker.js')}, 1);
    pool.run('list', { dir: ${JSON.stringify(ROOT)} }).then((l) => {
      let keep = [];
      for (let i = 0; i < 6e6; i++) { const o = { a: i, b: 'x' + i }; if (i % 2 === 0) keep.push(o); if (keep.length > 200000) keep = []; }
      process.stdout.write(JSON.stringify({ before, after: young(), listed: l.names.length > 0 }));
      return pool.close();
    });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout) as { before: number; after: number; listed: boolean };
  t.ok(m.listed, 'the worker answered');
  t.ok(m.after <= m.before, `no growth after the worker started (${(m.before / 2 ** 20).toFixed(1)} -> ${(m.after / 2 ** 20).toFixed(1)} MiB)`);
  t.end();
});

// The compacting collection moves every live object and keeps the old pages until it is done:
// fullGc(true) runs it only when a plain collection left enough free space in the pages.
t.test('fullGc(true) compacts only when a plain collection left the old space mostly free', (t) => {
  const script = `
    const g = require(${JSON.stringify(join(ROOT, 'dist', 'core', 'idle-gc.js'))});
    g.tuneGcForStreaming();
    const before = g.idleGcStats.compactions;
    const ok1 = g.fullGc(true);
    const small = g.idleGcStats.compactions - before;
    let a = [];
    for (let i = 0; i < 400000; i++) a.push({ name: 'x' + i, n: i, b: BigInt(i), arr: [i, i + 1] });
    const keep = a.filter((_, i) => i % 20 === 0);
    a = null;
    const ok2 = g.fullGc(true);
    const scattered = g.idleGcStats.compactions - before - small;
    process.stdout.write(JSON.stringify({ ok1, ok2, small, scattered, live: keep.length }));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout) as { ok1: boolean; ok2: boolean; small: number; scattered: number; live: number };
  t.ok(m.ok1 && m.ok2, 'both collections ran');
  t.equal(m.small, 0, 'a fresh heap: no compaction');
  t.equal(m.scattered, 1, 'survivors scattered over 20 times their size: compacted');
  t.equal(m.live, 20000, 'the survivors are still there');
  t.end();
});

// A lent stream (S3, Drive, peers) makes no garbage buffers, but its per-block objects reach the
// old generation, which V8 (incremental marking off) collects only at its limit.
t.test('bytes lent into blocks run a full collection every LENT_FULL_GC_EVERY_BYTES', (t) => {
  const script = `
    const g = require(${JSON.stringify(join(ROOT, 'dist', 'core', 'idle-gc.js'))});
    g.tuneGcForStreaming();
    // Old-generation garbage: objects that lived through two scavenges, then dropped.
    let a = [];
    for (let i = 0; i < 200000; i++) a.push({ n: i, s: 'y' + i });
    g.streamedBytes(g.SCAVENGE_EVERY_BYTES);
    g.streamedBytes(g.SCAVENGE_EVERY_BYTES);
    a = null;
    const used = () => process.memoryUsage().heapUsed;
    const full0 = g.scavengeStats.full;
    const u0 = used();
    g.lentBytes(g.LENT_FULL_GC_EVERY_BYTES - 1);
    const u1 = used(), full1 = g.scavengeStats.full - full0;
    g.lentBytes(1);
    const u2 = used(), full2 = g.scavengeStats.full - full0;
    process.stdout.write(JSON.stringify({ u0, u1, u2, full1, full2 }));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout) as { u0: number; u1: number; u2: number; full1: number; full2: number };
  t.equal(m.full1, 0, 'short of the mark: no collection');
  t.ok(m.u1 > m.u0 * 0.8, `and the garbage is still there (${m.u0 >> 20} -> ${m.u1 >> 20} MiB)`);
  t.equal(m.full2, 1, 'at the mark: one full collection');
  t.ok(m.u2 < m.u1 * 0.5, `which frees the old generation's garbage (${m.u1 >> 20} -> ${m.u2 >> 20} MiB)`);
  t.end();
});
