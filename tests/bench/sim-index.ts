/**
 * A synthetic index of N entries (default 10,000,000: 10,000 folders of 1,000 files with random
 * hashes), generated directly in SQLite, then measured through the real index code: size,
 * path lookup, `ls` of a 1,000-entry folder, find by hash, find by name (a full streamed pass),
 * the snapshot query a new peer triggers, and `vdfs status` / `vdfs ls` through the CLI.
 *
 *   npm run build && node dist/tests/bench/sim-index.js [--files 10000000] [--dir /tmp/vdfs-sim]
 *
 * Generation takes minutes at 10M (one transaction through the sqlite3 shell). Not part of `npm test`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import picomatch from 'picomatch';
import { openDb } from '../../index/db';
import { EntryStore } from '../../index/entries';
import { median, round } from './lib';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const FILES = Number(opt('files', '10000000'));
const DIR = opt('dir', '/tmp/vdfs-sim');
const FOLDERS = Math.ceil(FILES / 1000);
const VDFS = resolve(__dirname, '..', '..', '..', 'bin', 'vdfs');
const home = join(DIR, `home-${FILES}`);

function generate(): number {
  const t0 = Date.now();
  rmSync(home, { recursive: true, force: true });
  mkdirSync(join(DIR, 'loc'), { recursive: true });
  execFileSync(process.execPath, [VDFS, '--home', home, 'init']);
  execFileSync(process.execPath, [VDFS, '--home', home, 'location', 'add', 'sim', join(DIR, 'loc')]);
  execFileSync(process.execPath, [VDFS, '--home', home, 'scan']);
  const sql = `PRAGMA synchronous=OFF; PRAGMA cache_size=-200000; BEGIN;
    INSERT INTO entries (id, location_id, parent_id, name, type, version)
      WITH RECURSIVE d(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM d WHERE i < ${FOLDERS - 1})
      SELECT 100 + i, 1, 1, 'folder-' || i, 'dir', (100+i) || ':0:0' FROM d;
    INSERT INTO entries (location_id, parent_id, name, type, size, mtime_sec, mode, version, hash)
      WITH RECURSIVE f(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM f WHERE i < ${FILES - 1})
      SELECT 1, 100 + i / 1000, 'IMG_' || (i % 1000) || '.jpg', 'file', 1000000 + i, 1700000000 + i, 420,
             (20000 + i) || ':' || (1000000+i) || ':1700000000000000000', randomblob(32) FROM f;
    COMMIT; PRAGMA wal_checkpoint(TRUNCATE);`;
  execFileSync('sqlite3', [join(home, 'index.db')], { input: sql, maxBuffer: 1 << 20 });
  return (Date.now() - t0) / 1000;
}

function timeMs(f: () => void): number {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function cli(...a: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [VDFS, '--home', home, ...a], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vdfs ${a.join(' ')}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function main(): void {
  const generatedS = existsSync(join(home, 'index.db')) ? null : generate();
  const bytes = statSync(join(home, 'index.db')).size;
  const db = openDb(join(home, 'index.db'), { readonly: true });
  const entries = new EntryStore(db);
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const lookups = Array.from({ length: 1000 }, () =>
    timeMs(() => {
      if (!entries.resolve(1, `folder-${rnd(FOLDERS)}/IMG_${rnd(1000)}.jpg`)) throw new Error('lookup missed');
    }),
  );
  const ls = Array.from({ length: 50 }, () =>
    timeMs(() => {
      const f = entries.resolve(1, `folder-${rnd(FOLDERS)}`)!;
      if (entries.children(f.id).length !== 1000) throw new Error('ls short');
    }),
  );
  const sample = entries.resolve(1, `folder-${rnd(FOLDERS)}/IMG_1.jpg`)!;
  const byHash = Array.from({ length: 100 }, () =>
    timeMs(() => {
      if (entries.byHash(sample.hash!).length !== 1) throw new Error('hash missed');
    }),
  );
  const isMatch = picomatch('IMG_999.jpg');
  let found = 0;
  const findName = timeMs(() => {
    for (const e of entries.iterateNames()) if (isMatch(e.name)) found++;
  });
  if (found !== FOLDERS) throw new Error(`find by name found ${found}`);
  // What a newly paired peer costs the owner: the snapshot query of index/serve-queries.ts.
  let rows = 0;
  const snapshot = timeMs(() => {
    for (const _ of db
      .prepare(
        `WITH RECURSIVE t(id, path) AS (
        SELECT id, '' FROM entries WHERE location_id = 1 AND parent_id IS NULL
        UNION ALL SELECT e.id, CASE WHEN t.path = '' THEN e.name ELSE t.path || '/' || e.name END FROM entries e JOIN t ON e.parent_id = t.id)
      SELECT t.path, e.type, e.size, e.version, lower(hex(e.hash)) FROM t JOIN entries e ON e.id = t.id`,
      )
      .raw(true)
      .iterate())
      rows++;
  });
  db.close();
  const status = median([cli('status'), cli('status'), cli('status')]);
  const lsCli = median([cli('ls', '/sim/folder-7'), cli('ls', '/sim/folder-7'), cli('ls', '/sim/folder-7')]);
  const r = {
    files: FILES,
    generatedS,
    indexBytes: bytes,
    bytesPerEntry: Math.round(bytes / (FILES + FOLDERS)),
    lookupMsMedian: round(median(lookups)!),
    lookupMsP99: round([...lookups].sort((a, b) => a - b)[989]),
    ls1000MsMedian: round(median(ls)!),
    findByHashMsMedian: round(median(byHash)!),
    findByNameFullPassS: round(findName / 1000),
    snapshotQueryS: round(snapshot / 1000),
    snapshotRows: rows,
    cliStatusS: round(status!),
    cliLs1000S: round(lsCli!),
  };
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}

main();
