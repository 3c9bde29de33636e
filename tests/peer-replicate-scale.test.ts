// Issue 19: a newly paired node gets a big index by streaming. The owner's index is generated
// directly in SQLite (seconds); then the real owner daemon serves its snapshot and the real
// `vdfs location add` on the other node applies it. Neither side may hold the tree: the owner
// reads rows as it writes them, the receiver applies lines in batches as they arrive (a
// buffered snapshot of 400k entries is > 100 MB of JSON text plus a row object per entry).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { procStatusKiB, tempDir, VDFS_BIN, vdfs, vdfsOk } from './helpers/cli';
import { fillSynthetic, makeNode, pair, startPeerDaemon, syntheticHash } from './helpers/peer';

const FOLDERS = Number(process.env.VDFS_SCALE_FOLDERS ?? 400);
const PER_FOLDER = 1000;
/** The CLI alone (Node, SQLite, its modules) is ~100 MB here. */
const CLI_RSS_MB = 150;
/** The owner daemon idles near 100 MB with this index. */
const DAEMON_RSS_MB = 170;

function peakRssMB(pid: number): number {
  return procStatusKiB(pid, 'VmHWM') / 1024;
}

/** A content hash for file n: random-looking like real ones (the hash index then takes random inserts). */

const hasHashIndex = (home: string) => {
  const db = new Database(join(home, 'index.db'), { readonly: true });
  try {
    return db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'entries_hash'").pluck().get() === 1;
  } finally {
    db.close();
  }
};

t.test(`a new peer receives a ${FOLDERS * PER_FOLDER}-entry index by streaming, in bounded memory on both sides`, async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'x.txt': 'x' });
  const total = fillSynthetic(a, FOLDERS, PER_FOLDER);
  t.equal(total, FOLDERS * (PER_FOLDER + 1) + 2, 'the synthetic index: root, x.txt, folders, files');

  const da = await startPeerDaemon(a.home, { timeoutMs: 60_000 });
  t.teardown(() => da.stop());
  const b = makeNode(dir, 'beta');
  pair(a.home, b.home, ['docs']);
  const ownerBefore = peakRssMB(da.proc.pid!);

  const started = Date.now();
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, VDFS_BIN, '--home', b.home, 'location', 'add', 'adocs', 'peer://alpha/docs', '--json'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  const seconds = (Date.now() - started) / 1000;
  t.equal(r.status, 0, `vdfs location add succeeded: ${r.stderr.slice(-2000)}`);
  const added = JSON.parse(r.stdout) as { entries: number };
  t.equal(added.entries, total, `every entry arrived (${seconds.toFixed(1)} s)`);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)![1]) / 1024;
  t.ok(rss < CLI_RSS_MB, `the receiving CLI's max RSS ${rss.toFixed(0)} MB < ${CLI_RSS_MB} MB`);
  const owner = peakRssMB(da.proc.pid!);
  t.ok(owner < DAEMON_RSS_MB, `the owner daemon's peak RSS ${owner.toFixed(0)} MB (${ownerBefore.toFixed(0)} MB before) < ${DAEMON_RSS_MB} MB`);

  // What arrived is the tree, where it belongs.
  const status = JSON.parse(vdfsOk(b.home, ['status', '--json']).stdout) as { locations: { name: string; files: number; dirs: number }[] };
  const st = status.locations.find((l) => l.name === 'adocs')!;
  t.same([st.files, st.dirs], [FOLDERS * PER_FOLDER + 1, FOLDERS + 1], 'status on the new peer counts every file and folder');
  const last = `d${FOLDERS - 1}`;
  const ls = vdfsOk(b.home, ['ls', `/adocs/${last}`, '--json']).json<{ name: string; size: number; hash: string | null }[]>();
  t.equal(ls.length, PER_FOLDER, `ls /adocs/${last} lists its ${PER_FOLDER} files`);
  const img = ls.find((e) => e.name === 'IMG_7.jpg')!;
  const n = (FOLDERS - 1) * PER_FOLDER + 7;
  t.same([img.size, img.hash], [7, syntheticHash(n)], 'a file keeps its size and hash');
  // The bulk insert set the hash index aside (index/bulk-index.ts): it is back, and used.
  t.ok(hasHashIndex(b.home), 'the content-hash index exists after the snapshot');
  t.same(vdfsOk(b.home, ['find', '--hash', syntheticHash(n), '--json']).json(), [`/adocs/${last}/IMG_7.jpg`], 'find by hash on the new peer');
  t.match(da.output(), /vdfs serving peers/);
});

t.test('an owner that dies half-way through a snapshot leaves no half tree behind', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'x.txt': 'x' });
  fillSynthetic(a, 100, PER_FOLDER);
  const da = await startPeerDaemon(a.home, { timeoutMs: 60_000 });
  t.teardown(() => da.stop());
  const b = makeNode(dir, 'beta');
  pair(a.home, b.home, ['docs']);
  // Some batches are written on B (the snapshot is being applied as it streams): then A dies.
  const bdb = new Database(join(b.home, 'index.db'), { readonly: true, fileMustExist: true });
  t.teardown(() => bdb.close());
  const arrived = () => bdb.prepare("SELECT count(*) FROM entries e JOIN locations l ON l.id = e.location_id WHERE l.name = 'adocs'").pluck().get() as number;
  const all = () => bdb.prepare('SELECT count(*) FROM entries').pluck().get() as number;
  const before = all();
  const add = spawn(process.execPath, [VDFS_BIN, '--home', b.home, 'location', 'add', 'adocs', 'peer://alpha/docs'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  add.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => add.once('exit', (code) => r(code)));
  t.teardown(() => {
    if (add.exitCode === null) add.kill('SIGKILL');
  });
  const deadline = Date.now() + 120_000;
  while (arrived() === 0) {
    if (add.exitCode !== null) throw new Error(`location add ended before A was killed: ${err}`);
    if (Date.now() > deadline) throw new Error('no snapshot batch arrived on B within 120 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  const partial = arrived();
  await da.kill9();
  const code = await exited;
  t.not(code, 0, `location add fails when the owner dies (had ${partial} entries): ${err.trim()}`);
  t.match(err, /EHOSTDOWN|EIO|closed the connection|cut off/, 'saying the peer went away');
  t.notOk(vdfs(b.home, ['location', 'ls', '--json']).stdout.includes('adocs'), 'the half-received location is gone');
  t.equal(all(), before, 'and none of its entries stay in the index');
  t.ok(hasHashIndex(b.home), 'the content-hash index set aside during the snapshot is back');
});
