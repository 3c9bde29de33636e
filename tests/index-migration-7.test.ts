import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../index/migrations';
import { b3sum, tempDir, vdfsOk } from './helpers/cli';

// Migration 7 (issue 19): content hashes become 32-byte BLOBs. A home as the previous schema
// (6 migrations, hashes as hex text) left it must keep every hash, block list, verification and
// counter, and the CLI must answer with the same hex hashes, checked against b3sum.

const FILES: Record<string, Buffer> = {
  'empty.txt': Buffer.alloc(0),
  'one.bin': randomBytes(1),
  'sub/photo.jpg': randomBytes(100_000),
  'sub/big.bin': randomBytes(2 * 1024 * 1024 + 7), // three 1 MiB blocks
  'copy-of-photo.jpg': Buffer.alloc(0), // filled with photo.jpg's bytes below: a duplicate
};
FILES['copy-of-photo.jpg'] = FILES['sub/photo.jpg'];

/** Tables copied across, in an order that satisfies the foreign keys. */
const COPY = ['meta', 'nodes', 'locations', 'entries', 'blobs', 'peer_block_lists', 'props', 'verified', 'pins', 'uploads', 'remote_deletes', 'changes'];
const HASHED: Record<string, string> = { entries: 'hash', blobs: 'hash', peer_block_lists: 'hash', verified: 'hash' };

/**
 * Rewrites a home's index.db as vdfs with 6 migrations would have stored the same data: the
 * tables made by migrations 1–6, every row copied with its hashes as lowercase hex text.
 */
function toPreviousSchema(dbFile: string): void {
  const oldFile = `${dbFile}.v6`;
  const old = new Database(oldFile);
  old.pragma('foreign_keys = ON');
  for (let v = 0; v < 6; v++) {
    old.exec(MIGRATIONS[v]);
    old.pragma(`user_version = ${v + 1}`);
  }
  old.exec(`ATTACH '${dbFile}' AS cur`);
  for (const table of COPY) {
    const cols = (old.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[]).map((r) => r.name);
    const sel = cols.map((c) => (HASHED[table] === c ? `nullif(lower(hex(${c})), '')` : c)).join(', ');
    old.exec(`INSERT INTO main.${table} (${cols.join(', ')}) SELECT ${sel} FROM cur.${table}`);
  }
  old.exec('DETACH cur');
  old.close();
  renameSync(oldFile, dbFile);
}

t.test('a home made by the previous schema migrates with every hash intact (b3sum), and nothing is hashed again', async (t) => {
  const dir = tempDir(t);
  const root = join(dir, 'files');
  mkdirSync(join(root, 'sub'), { recursive: true });
  for (const [rel, bytes] of Object.entries(FILES)) writeFileSync(join(root, rel), bytes);
  const want = Object.fromEntries(Object.keys(FILES).map((rel) => [rel, b3sum(join(root, rel))]));
  const home = join(dir, 'home');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'pics', root]);
  vdfsOk(home, ['scan']);
  vdfsOk(home, ['fsck']);
  const dbFile = join(home, 'index.db');
  const cur = new Database(dbFile);
  cur.pragma('wal_checkpoint(TRUNCATE)');
  const blocksBefore = cur.prepare('SELECT lower(hex(hash)) AS hash, size, block_size, lower(hex(block_hashes)) AS blocks, trusted FROM blobs ORDER BY 1').all();
  const verifiedBefore = (cur.prepare('SELECT count(*) AS n FROM verified').get() as { n: number }).n;
  cur.close();
  t.ok(verifiedBefore >= Object.keys(FILES).length, 'fsck recorded its verifications');

  toPreviousSchema(dbFile);
  const v6 = new Database(dbFile, { readonly: true });
  t.equal(v6.pragma('user_version', { simple: true }), 6, 'the home is at the previous schema');
  t.equal((v6.prepare("SELECT typeof(hash) AS t FROM entries WHERE name = 'one.bin'").get() as { t: string }).t, 'text', 'with hex hashes');
  v6.close();

  // The first command opens the index and migrates it.
  const ls = vdfsOk(home, ['ls', '--json', '/pics/sub']).json<{ name: string; hash: string | null }[]>();
  const db = new Database(dbFile, { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length, 'migrated to the latest schema');
  t.same(db.prepare("SELECT DISTINCT typeof(hash) AS t FROM entries WHERE type = 'file'").all(), [{ t: 'blob' }], 'hashes stored as BLOBs');
  t.same(db.prepare('SELECT DISTINCT length(hash) AS n FROM entries WHERE hash IS NOT NULL').all(), [{ n: 32 }], 'of 32 bytes');
  t.same(
    db.prepare('SELECT lower(hex(hash)) AS hash, size, block_size, lower(hex(block_hashes)) AS blocks, trusted FROM blobs ORDER BY 1').all(),
    blocksBefore,
    'every blob and its block hashes kept',
  );
  t.equal((db.prepare('SELECT count(*) AS n FROM verified').get() as { n: number }).n, verifiedBefore, 'fsck verifications kept');
  t.same(db.pragma('integrity_check', { simple: true }), 'ok');
  t.same(db.pragma('foreign_key_check'), []);
  db.close();

  for (const name of ['photo.jpg', 'big.bin']) t.equal(ls.find((e) => e.name === name)?.hash, want[`sub/${name}`], `ls: ${name} against b3sum`);
  for (const rel of Object.keys(FILES)) {
    const st = vdfsOk(home, ['stat', '--json', `/pics/${rel}`]).json<{ hash: string }>();
    t.equal(st.hash, want[rel], `stat: ${rel} against b3sum`);
  }
  const found = vdfsOk(home, ['find', '--json', '--hash', want['sub/photo.jpg']]).json<string[]>();
  t.same(found, ['/pics/copy-of-photo.jpg', '/pics/sub/photo.jpg'], 'find by hash uses the migrated hash index');
  const dupes = vdfsOk(home, ['dupes', '--json']).json<{ hash: string; paths: string[] }[]>();
  t.same(
    dupes.map((d) => d.hash),
    [want['sub/photo.jpg']],
    'dupes groups by the migrated hashes',
  );
  const scan = vdfsOk(home, ['scan', '--json']).json<{ hashed: number; unchanged: number; errors: number }>();
  t.equal(scan.hashed, 0, 'a rescan hashes nothing again');
  t.equal(scan.errors, 0);
  const fsck = vdfsOk(home, ['fsck', '--json']).json<{ checked: number; ok: number; problems: unknown[] }>();
  t.same(fsck.problems, [], 'fsck: every file matches its migrated hash');
  t.equal(fsck.ok, fsck.checked);
  t.ok(fsck.checked >= Object.keys(FILES).length);
});
