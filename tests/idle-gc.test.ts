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
