// Issue 19: memory bounded by configuration, not by the index size. A synthetic index of
// 400,000 entries is generated directly in SQLite (seconds), then the real CLI and a real
// daemon run against it under /usr/bin/time or /proc: each must stay far below what loading
// the whole tree costs (a row object per entry is ~300 bytes: 400k entries > 120 MB).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { VDFS_BIN, vdfsOk } from './helpers/cli';

const FOLDERS = 390;
const PER_FOLDER = 1000;
const WIDE = 10_000;
const TOTAL = FOLDERS * PER_FOLDER + WIDE;
/** The CLI alone (Node, SQLite, its modules) is ~100 MB here; a whole-tree load adds > 100 MB. */
const CLI_RSS_MB = 150;
const DAEMON_RSS_MB = 170;

function maxRssMB(args: string[]): { mb: number; stdout: string } {
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, VDFS_BIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`vdfs ${args.join(' ')} failed: ${r.stderr}`);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  if (!m) throw new Error('/usr/bin/time gave no max RSS');
  return { mb: Number(m[1]) / 1024, stdout: r.stdout };
}

t.test('start-up, status, ls and find stay within memory bounds on a 400k-entry index', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-scale-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const home = join(dir, 'home');
  const big = join(dir, 'big');
  const live = join(dir, 'live');
  mkdirSync(big);
  mkdirSync(live);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'big', big]);
  vdfsOk(home, ['location', 'add', 'live', live]);
  vdfsOk(home, ['scan']);
  // The big location's disk goes away: its index stays (offline), and no scan touches it.
  rmSync(big, { recursive: true });

  const db = new Database(join(home, 'index.db'));
  const loc = (db.prepare("SELECT id FROM locations WHERE name = 'big'").get() as { id: number }).id;
  const root = (db.prepare('SELECT id FROM entries WHERE location_id = ? AND parent_id IS NULL').get(loc) as { id: number }).id;
  const hash = (i: number) => i.toString(16).padStart(64, '0');
  db.transaction(() => {
    const dirIns = db.prepare("INSERT INTO entries (location_id, parent_id, name, type, version) VALUES (?, ?, ?, 'dir', ?)");
    const fileIns = db.prepare("INSERT INTO entries (location_id, parent_id, name, type, size, version, hash) VALUES (?, ?, ?, 'file', ?, ?, unhex(?))");
    let n = 0;
    const folder = (name: string, files: number) => {
      const id = Number(dirIns.run(loc, root, name, `${n}:0:0`).lastInsertRowid);
      // Files come in pairs of one content (2n, 2n+1): `vdfs dupes` has ~200,000 groups to stream.
      for (let f = 0; f < files; f++, n++) fileIns.run(loc, id, `file-${f}.jpg`, f, `${n}:${f}:0`, hash(n >> 1));
    };
    for (let d = 0; d < FOLDERS; d++) folder(`d${d}`, PER_FOLDER);
    folder('wide', WIDE);
  })();
  db.close();

  const status = maxRssMB(['--home', home, 'status', '--json']);
  const report = JSON.parse(status.stdout) as {
    index: { entries: number };
    locations: { name: string; files: number }[];
    memory: { budget: { total: number }; daemon: unknown };
    copies: unknown;
    copiesSkipped: number;
  };
  // The copies report reads every file and its replicas (seconds at a million): past 50,000 files status leaves it to `vdfs copies`.
  t.equal(report.copies, null, 'status does not count copies of a 400k-file index');
  t.ok(report.copiesSkipped >= TOTAL, `and says how many files it did not count (${report.copiesSkipped})`);
  t.equal(report.locations.find((l) => l.name === 'big')?.files, TOTAL, 'status counts every synthetic file (kept by the triggers)');
  t.ok(report.memory.budget.total > 0, 'status reports the memory budget');
  t.equal(report.memory.daemon, null, 'no daemon running yet');
  t.ok(status.mb < CLI_RSS_MB, `status max RSS ${status.mb.toFixed(0)} MB < ${CLI_RSS_MB} MB`);

  const ls = maxRssMB(['--home', home, 'ls', '/big/wide']);
  t.equal(ls.stdout.split('\n').filter(Boolean).length, WIDE, 'ls lists the 10,000-entry folder');
  t.ok(ls.mb < CLI_RSS_MB, `ls of 10,000 entries max RSS ${ls.mb.toFixed(0)} MB < ${CLI_RSS_MB} MB`);

  const find = maxRssMB(['--home', home, 'find', '--name', 'file-999.jpg']);
  t.equal(find.stdout.split('\n').filter(Boolean).length, FOLDERS + 1, 'find --name streams the index and finds one per folder');
  t.ok(find.mb < CLI_RSS_MB, `find over ${TOTAL} entries max RSS ${find.mb.toFixed(0)} MB < ${CLI_RSS_MB} MB`);

  const dupes = maxRssMB(['--home', home, 'dupes', '--json']);
  const groups = JSON.parse(dupes.stdout) as { hash: string; size: number; paths: string[] }[];
  // Every pair is a group, but for the pairs holding an empty file (one per folder: empty files are left out).
  t.equal(groups.length, TOTAL / 2 - (FOLDERS + 1), 'dupes finds every pair of identical files');
  t.ok(
    groups.every((gr) => gr.paths.length === 2 && gr.paths[0].replace(/\d+\.jpg$/, '') === gr.paths[1].replace(/\d+\.jpg$/, '')),
    'each group is the two files of one folder',
  );
  t.ok(groups[0].size >= groups[groups.length - 1].size, 'the most space wasted first');
  t.ok(dupes.mb < CLI_RSS_MB, `dupes of ${groups.length} groups max RSS ${dupes.mb.toFixed(0)} MB < ${CLI_RSS_MB} MB`);

  // A real daemon: start-up (rescans, watches), then idle; its RSS read back through `vdfs status`.
  const child = spawn(process.execPath, [VDFS_BIN, '--home', home, 'serve', '--webdav', '127.0.0.1:0', '--webdav-insecure-no-auth'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  type DaemonMemory = { pid: number; rss: number; peakRss: number } | null;
  let daemon: DaemonMemory;
  const deadline = Date.now() + 60_000;
  // Ready when it has watched the live location: a file made there reaches the index.
  mkdirSync(join(live, 'a', 'b'), { recursive: true });
  writeFileSync(join(live, 'a', 'b', 'new.txt'), 'x');
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited: ${err}`);
    if (Date.now() > deadline) throw new Error(`daemon did not index the new file: ${err}`);
    const r = spawnSync(process.execPath, [VDFS_BIN, '--home', home, 'status', '--json'], { encoding: 'utf8', timeout: 30_000 });
    const s = JSON.parse(r.stdout) as { locations: { name: string; files: number }[]; memory: { daemon: DaemonMemory } };
    daemon = s.memory.daemon;
    if (daemon && s.locations.find((l) => l.name === 'live')?.files === 1) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  t.equal(daemon!.pid, child.pid, 'status reports the running daemon');
  // Live through the per-directory watches (the periodic rescan is 600 s away): a new folder
  // two levels down, then a file in it, reach the index.
  const listed = (vpath: string): string[] | undefined => {
    const r = spawnSync(process.execPath, [VDFS_BIN, '--home', home, 'ls', vpath, '--json'], { encoding: 'utf8', timeout: 30_000 });
    return r.status === 0 ? (JSON.parse(r.stdout) as { name: string }[]).map((e) => e.name) : undefined;
  };
  const waitFor = async (what: string, ok: () => boolean) => {
    const end = Date.now() + 20_000;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`${what} did not reach the index within 20 s`);
      await new Promise((res) => setTimeout(res, 200));
    }
  };
  mkdirSync(join(live, 'a', 'b', 'c'));
  // The folder is indexed (and watched) first: then the file is an event inside the new folder.
  await waitFor('a new sub-folder', () => listed('/live/a/b')?.includes('c') ?? false);
  writeFileSync(join(live, 'a', 'b', 'c', 'deep.txt'), 'y');
  await waitFor('a file in a new sub-folder', () => listed('/live/a/b/c')?.includes('deep.txt') ?? false);
  t.pass('a file made in a new sub-folder reached the index through the watcher');
  t.ok(daemon!.peakRss / 2 ** 20 < DAEMON_RSS_MB, `daemon peak RSS ${(daemon!.peakRss / 2 ** 20).toFixed(0)} MB < ${DAEMON_RSS_MB} MB with ${TOTAL} entries`);
  child.kill('SIGTERM');
  await new Promise((res) => child.once('exit', res));
});
