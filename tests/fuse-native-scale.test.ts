import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
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
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
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

t.test(`the node table stays bounded across a walk of ${DIRS * PER_DIR} entries and drop_caches`, { timeout: 1_200_000 }, async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  execFileSync('mkdir', ['-p', src]);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  vdfsOk(home, ['scan']);
  const loc = `(SELECT id FROM locations WHERE name = 'l')`;
  const sql = `PRAGMA synchronous=OFF; BEGIN;
    INSERT INTO entries (id, location_id, parent_id, name, type, mode, version)
      WITH RECURSIVE d(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM d WHERE i < ${DIRS - 1})
      SELECT 1000 + i, ${loc}, (SELECT id FROM entries WHERE parent_id IS NULL AND location_id = ${loc}), 'd' || i, 'dir', 493, 'dir' || i FROM d;
    INSERT INTO entries (location_id, parent_id, name, type, size, mtime_sec, mode, version)
      WITH RECURSIVE f(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM f WHERE i < ${DIRS * PER_DIR - 1})
      SELECT ${loc}, 1000 + i / ${PER_DIR}, 'f' || (i % ${PER_DIR}), 'file', i, 1700000000 + i, 420, 'v' || i FROM f;
    COMMIT; PRAGMA wal_checkpoint(TRUNCATE);`;
  execFileSync('sqlite3', [join(home, 'index.db')], { input: sql, maxBuffer: 1 << 20 });
  renameSync(src, `${src}-away`); // unreachable: served from the index, never rescanned away

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
