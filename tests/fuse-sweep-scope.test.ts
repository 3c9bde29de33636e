import t, { type Test } from 'tap';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until, vdfsOk } from './helpers/cli';
import { mountWithOracle, sh } from './helpers/mount';

// The invalidation sweep (mount/fuse/invalidator.ts) checks the nodes a change of one path
// concerns, not every node the kernel holds; a change whose extent is not known still checks
// them all. The mounts keep attributes and names for a minute (fuse.attrTimeout,
// fuse.entryTimeout), so what the kernel sees of a change within the tests' 30 s waits came
// from an invalidation, not from a timeout.

const LONG = { 'fuse.attrTimeout': '60', 'fuse.entryTimeout': '60' };

/** The binding's counters (user.vdfs.fuse on the mount's root). */
function fuseStats(mnt: string): Record<string, number> {
  return JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as Record<string, number>;
}

const MANY = 2000;

/** A mount (attributes and names kept 60 s) of a location whose folder `many` the kernel holds a node of each name of. */
async function mountMany(t: Test, more: (src: string) => void = () => undefined): Promise<{ home: string; src: string; mnt: string }> {
  const { home, src, mnt } = await mountWithOracle(t, 'u', [], [], LONG);
  mkdirSync(join(src, 'many'));
  for (let i = 0; i < MANY; i++) writeFileSync(join(src, 'many', `f${i}`), `${i}`);
  more(src);
  vdfsOk(home, ['scan', 'u']);
  const listed = () =>
    sh('ls', [join(mnt, 'u', 'many')])
      .stdout.split('\n')
      .filter(Boolean).length;
  t.ok(await until(() => listed() === MANY, 30_000), 'every name is listed');
  t.equal(sh('ls', ['-l', join(mnt, 'u', 'many')]).code, 0, 'ls -l: the kernel holds a node for each name');
  return { home, src, mnt };
}

t.test('a change on the disk checks the nodes it concerns, not every node the kernel holds', async (t) => {
  const { src, mnt } = await mountMany(t, (src) => {
    mkdirSync(join(src, 'one'));
    writeFileSync(join(src, 'one', 'x'), 'first');
  });
  t.equal(readFileSync(join(mnt, 'u', 'one', 'x'), 'utf8'), 'first', 'x read through the mount (now in the page cache)');
  t.ok(fuseStats(mnt).nodes >= MANY, `the kernel holds ${fuseStats(mnt).nodes} nodes`);

  // A round during which something else (a periodic rescan) changed the index as a whole proves
  // nothing: done again.
  let round = { swept: -1, invalidations: 0 };
  for (let i = 0; i < 3; i++) {
    t.ok(await until(() => fuseStats(mnt).sweepPending === 0, 30_000), 'no sweep pending');
    const before = fuseStats(mnt);
    const text = `changed ${i} on the disk`;
    writeFileSync(join(src, 'one', 'x'), text);
    // Nothing through the mount meanwhile (an open of x would refresh the kernel's view itself).
    t.ok(await until(() => fuseStats(mnt).invalidations > before.invalidations && fuseStats(mnt).sweepPending === 0, 30_000), 'the change invalidated a node');
    const after = fuseStats(mnt);
    round = { swept: after.swept - before.swept, invalidations: after.invalidations - before.invalidations };
    t.equal(readFileSync(join(mnt, 'u', 'one', 'x'), 'utf8'), text, 'the new bytes are read through the mount');
    if (round.swept < MANY) break;
  }
  t.ok(round.swept >= 1 && round.swept <= 10, `the sweeps checked ${round.swept} nodes (x and its folder), of ${fuseStats(mnt).nodes}`);
  t.ok(fuseStats(mnt).nodes >= MANY, 'the kernel still holds the listed names');

  // A name made in the folder moves the folder's mtime: the kernel's cached attributes of the
  // folder are dropped by the sweep.
  statSync(join(mnt, 'u', 'one'));
  const before = fuseStats(mnt);
  writeFileSync(join(src, 'one', 'new'), 'n');
  const want = statSync(join(src, 'one')).mtimeMs;
  t.ok(await until(() => fuseStats(mnt).invalidations > before.invalidations && fuseStats(mnt).sweepPending === 0, 30_000), 'the new name invalidated a node');
  t.equal(statSync(join(mnt, 'u', 'one')).mtimeMs, want, "the folder's new mtime is seen through the mount");
  t.ok(fuseStats(mnt).swept - before.swept <= 10, `checked ${fuseStats(mnt).swept - before.swept} nodes`);
});

t.test('a change whose extent is not known (another process committed to the index) checks every node', async (t) => {
  const { home, src, mnt } = await mountMany(t);
  t.ok(await until(() => fuseStats(mnt).sweepPending === 0, 30_000), 'no sweep pending');
  const before = fuseStats(mnt);
  // Changed behind the daemon's back and indexed by another process (the CLI's own connection).
  writeFileSync(join(src, 'many', 'f7'), 'seven, longer now');
  vdfsOk(home, ['scan', 'u']);
  t.ok(
    await until(() => fuseStats(mnt).swept - before.swept >= MANY && fuseStats(mnt).sweepPending === 0, 30_000),
    `a sweep checked every node (${fuseStats(mnt).swept - before.swept})`,
  );
  t.ok(await until(() => statSync(join(mnt, 'u', 'many', 'f7')).size === 'seven, longer now'.length, 30_000), 'the new size is seen through the mount');
});

/** LOOKUPs and GETATTRs the daemon was sent (answered in JS or in the addon). */
function asked(mnt: string): number {
  const s = fuseStats(mnt);
  return Object.entries(s)
    .filter(([k]) => /^op\.(lookup|getattr)$/.test(k))
    .reduce((n, [, v]) => n + Number(v), 0);
}

for (const [ttl, asks] of [
  ['1', true],
  ['3600', false],
] as const) {
  t.test(`with fuse.attrTimeout and fuse.entryTimeout ${ttl} s, a stat 2.5 s after another ${asks ? 'asks the daemon again' : 'is answered by the kernel'}`, async (t) => {
    const { src, mnt } = await mountWithOracle(t, 'u', [], [], { 'fuse.attrTimeout': ttl, 'fuse.entryTimeout': ttl });
    writeFileSync(join(src, 'f'), 'f');
    t.ok(await until(() => sh('stat', [join(mnt, 'u', 'f')]).code === 0, 30_000), 'f is there');
    t.ok(await until(() => fuseStats(mnt).sweepPending === 0, 30_000), 'no sweep pending');
    const before = asked(mnt);
    await new Promise((r) => setTimeout(r, 2500));
    statSync(join(mnt, 'u', 'f'));
    const n = asked(mnt) - before;
    if (asks) t.ok(n >= 1, `the kernel asked the daemon ${n} times`);
    else t.equal(n, 0, 'the kernel asked the daemon nothing');
  });
}
