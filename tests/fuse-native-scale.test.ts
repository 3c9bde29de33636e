import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { procStatusKiB, tempDir, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';

// The node table of the native binding across a walk of 1,000,000 entries (a synthetic index:
// 1,000 folders of 1,000 files, written straight into SQLite like tests/bench/sim-index.ts;
// the location's folder is then moved away, so the start-up rescan cannot drop the rows and
// the mount lists and stats everything from the index alone). The kernel holds a node for
// every name it has cached; after `echo 2 > /proc/sys/vm/drop_caches` it forgets them, and the
// daemon's table must fall back to the root.

const DIRS = 1000;
const PER_DIR = 1000;

function fuseNodes(mnt: string): number {
  const r = sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]);
  return (JSON.parse(r.stdout) as { nodes: number }).nodes;
}

function rssMiB(pid: number): number {
  return procStatusKiB(pid, 'VmRSS') / 1024;
}

async function until(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return fn();
}

/** Runs `find -printf` over the mount in a child (this process must stay free to poll) and counts lines. */
function walk(dir: string): Promise<{ code: number | null; lines: number; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('find', [dir, '-printf', '%s %T@\n'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      for (const b of d) if (b === 10) lines++;
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 900_000);
    p.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, lines, err });
    });
  });
}

/** A home whose location `l` holds `dirs` folders of PER_DIR files, written straight into SQLite; its folder moved away. */
function syntheticHome(dir: string, dirs: number): string {
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  execFileSync('mkdir', ['-p', src]);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  vdfsOk(home, ['scan']);
  const loc = `(SELECT id FROM locations WHERE name = 'l')`;
  const sql = `PRAGMA synchronous=OFF; BEGIN;
    INSERT INTO entries (id, location_id, parent_id, name, type, mode, version)
      WITH RECURSIVE d(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM d WHERE i < ${dirs - 1})
      SELECT 1000 + i, ${loc}, (SELECT id FROM entries WHERE parent_id IS NULL AND location_id = ${loc}), 'd' || i, 'dir', 493, 'dir' || i FROM d;
    INSERT INTO entries (location_id, parent_id, name, type, size, mtime_sec, mode, version)
      WITH RECURSIVE f(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM f WHERE i < ${dirs * PER_DIR - 1})
      SELECT ${loc}, 1000 + i / ${PER_DIR}, 'f' || (i % ${PER_DIR}), 'file', i, 1700000000 + i, 420, 'v' || i FROM f;
    COMMIT; PRAGMA wal_checkpoint(TRUNCATE);`;
  execFileSync('sqlite3', [join(home, 'index.db')], { input: sql, maxBuffer: 1 << 20 });
  renameSync(src, `${src}-away`); // unreachable: served from the index, never rescanned away
  return home;
}

t.test(`the node table stays bounded across a walk of ${DIRS * PER_DIR} entries and drop_caches`, { timeout: 1_200_000 }, async (t) => {
  const dir = tempDir(t);
  const home = syntheticHome(dir, DIRS);
  const mnt = join(dir, 'mnt');
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const pid = m.proc.pid!;
  const before = rssMiB(pid);
  t.equal(fuseNodes(mnt), 1, 'only the root before the walk');

  const w = await walk(join(mnt, 'l'));
  t.equal(w.code, 0, `find finished: ${w.err.slice(0, 300)}`);
  t.equal(w.lines, 1 + DIRS + DIRS * PER_DIR, 'walked every entry of the index');
  const held = fuseNodes(mnt);
  const walked = rssMiB(pid);
  t.ok(held > DIRS, `the walk made the kernel hold nodes (${held})`);
  t.ok(held <= 1 + 1 + DIRS + DIRS * PER_DIR, `never more nodes than names (${held})`);
  // The kernel was asked to drop old names past the budget (fuse.maxNodes, 100,000 by default).
  t.ok(held <= 110_000 + 1000, `the table stayed near its budget (${held} nodes at the end)`);
  // What the walk cost the daemon, per name walked: a node table entry and its last attributes
  // at most (the kernel may hold every one of them), not a copy of each listing. Per walked
  // name, not per node held at the end: the kernel forgets nodes during the walk (memory
  // pressure, another process's drop_caches) while RSS keeps its peak.
  const perName = ((walked - before) * 1024 * 1024) / (DIRS * PER_DIR);
  t.ok(perName < 1024, `about ${Math.round(perName)} bytes of RSS per walked name (${before.toFixed(0)} -> ${walked.toFixed(0)} MiB; ${held} nodes held at the end)`);

  writeFileSync('/proc/sys/vm/drop_caches', '2');
  t.ok(await until(() => fuseNodes(mnt) < 100, 120_000), `forgotten after drop_caches (${fuseNodes(mnt)} left)`);
  t.equal(
    sh('ls', [join(mnt, 'l', 'd7')])
      .stdout.split('\n')
      .filter(Boolean).length,
    PER_DIR,
    'the mount still answers',
  );
});

t.test('past fuse.maxNodes the kernel is asked to drop old names: the table stays near the budget, every name still answers', { timeout: 600_000 }, async (t) => {
  const SMALL_DIRS = 50;
  const MAX = 2000;
  const dir = tempDir(t);
  const home = syntheticHome(dir, SMALL_DIRS);
  vdfsOk(home, ['config', 'set', 'fuse.maxNodes', String(MAX)]);
  const mnt = join(dir, 'mnt');
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const w = await walk(join(mnt, 'l'));
  t.equal(w.code, 0, `find finished: ${w.err.slice(0, 300)}`);
  t.equal(w.lines, 1 + SMALL_DIRS + SMALL_DIRS * PER_DIR, 'walked every entry of the index');
  const st = () => JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as { nodes: number; maxNodes: number; namesDropped: number };
  t.equal(st().maxNodes, MAX, 'the configured budget');
  // Drops go out at most every 200 ms, so the last ones may follow the walk's end: polled, as the FORGETs after them.
  t.ok(await until(() => st().namesDropped > SMALL_DIRS * PER_DIR - 2 * MAX, 60_000), `the kernel was asked to drop old names (${st().namesDropped})`);
  // FORGETs arrive a little after the invalidations: poll for the kernel to have let go.
  t.ok(await until(() => st().nodes <= MAX * 1.1 + 100, 60_000), `the table is back near its budget (${st().nodes} nodes; ${SMALL_DIRS * PER_DIR} names walked)`);
  // A dropped name is looked up again when asked: the first folder's files, with their sizes.
  const out = sh('stat', ['-c', '%n %s', join(mnt, 'l', 'd0', 'f7'), join(mnt, 'l', 'd1', 'f999')])
    .stdout.trim()
    .split('\n');
  t.same(out, [`${join(mnt, 'l', 'd0', 'f7')} 7`, `${join(mnt, 'l', 'd1', 'f999')} ${PER_DIR + 999}`], 'names dropped from the kernel still answer, with their attributes');
  const again = await walk(join(mnt, 'l'));
  t.equal(again.lines, w.lines, 'a second walk sees every name again');
});
