import { statSync, type BigIntStats } from 'node:fs';
import { FsError, toFsError } from '../core/fs-error';
import { entryFromStats } from '../core/local-stat';
import type { Entry } from './entries';
import { IgnoreRules } from './ignore-rules';
import type { Location } from './locations';
import { DirDiff } from './scan-diff';
import { fieldsOf, HASH_BACKLOG, HashStage } from './scan-hash';
import type { ScanContext, ScanOptions, ScanProgress, ScanRun, ScanSummary } from './scan-types';
import { TreeWalk } from './scan-walk';
import { stateRelsIn } from './state-paths';
import { TxBatcher } from './tx-batcher';
import { syncIndex } from './db';

export type { ScanContext, ScanOptions, ScanProblem, ScanProgress, ScanSummary } from './scan-types';
export { EMPTY_HASH, joinRelRaw } from './scan-diff';

/**
 * Brings the index of one local location in line with its directory: new, changed and
 * removed entries, then BLAKE3 hashes (whole file and per block) of every file whose
 * size+mtime+inode changed. Three stages over one worker pool (`ctx.pool`): the walk lists
 * directories (index/scan-walk.ts), the diff compares each listing with the index and writes
 * the changes (scan-diff.ts), the hash stage hashes what changed (scan-hash.ts); the walk
 * waits while HASH_BACKLOG files wait for hashing. Throws EHOSTDOWN when the root is missing,
 * ENOTDIR when it is no directory, or an index write's error; problems with single files or
 * directories are reported through `onProblem` and counted, never fatal.
 */
export async function scanLocalLocation(ctx: ScanContext, loc: Location, rootPath: string, opts: ScanOptions = {}): Promise<ScanSummary> {
  const started = process.hrtime.bigint();
  const rootStat = statRoot(ctx, loc, rootPath);
  const run = newRun(ctx, opts);
  const staged = new Set(ctx.db.prepare("SELECT path FROM uploads WHERE location_id = ? AND state = 'pending'").pluck().all(loc.id) as string[]);
  // Skipped like ignored names: entries indexed there before are removed by this scan.
  const hidden = new Set(stateRelsIn(rootPath, ctx.statePaths ?? []));
  const hasher = new HashStage(run, rootPath);
  const diff = new DirDiff(run, loc, new IgnoreRules(loc.options.ignore), hidden, staged, {
    dir: (d) => walk.add(d),
    hash: (job) => hasher.add(job),
  });
  const walk = new TreeWalk(
    ctx.pool,
    (d, l) => diff.apply(d, l),
    (d, msg) => run.problem(d.rel || '.', msg),
    () => hasher.backlog < HASH_BACKLOG,
  );
  hasher.onDrain(() => walk.pump());
  try {
    const root = syncRoot(run, loc, rootStat);
    await walk.run({ id: root.id, abs: rootPath, rel: '' });
    run.tx.flush();
    run.progress.phase = 'hash';
    opts.onProgress?.({ ...run.progress });
    const hashed = (await hasher.finish()) + diff.emptyHashed;
    ctx.locations.setLastScan(loc.id, Date.now());
    syncIndex(ctx.db);
    opts.onProgress?.({ ...run.progress });
    const p = run.progress;
    return { files: p.files, dirs: p.dirs, bytes: p.bytes, hashed, unchanged: diff.unchanged, errors: run.problems, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  } catch (err) {
    hasher.cancel();
    run.tx.abort();
    throw err;
  }
}

/** stat, not lstat: the root itself may be a symlink (~/Photos -> /mnt/disk/Photos). Marks the location online or not. */
function statRoot(ctx: ScanContext, loc: Location, rootPath: string): BigIntStats {
  let st: BigIntStats;
  try {
    st = statSync(rootPath, { bigint: true });
  } catch (err) {
    ctx.locations.setOnline(loc.id, false);
    throw new FsError('EHOSTDOWN', `location ${loc.name}: ${rootPath} is not reachable (${toFsError(err, 'stat').code}); its last indexed tree stays visible`);
  }
  if (!st.isDirectory()) throw new FsError('ENOTDIR', `location ${loc.name}: ${rootPath} is not a directory`);
  ctx.locations.setOnline(loc.id, true);
  return st;
}

function newRun(ctx: ScanContext, opts: ScanOptions): ScanRun {
  const progress: ScanProgress = { phase: 'walk', files: 0, dirs: 0, bytes: 0, hashedFiles: 0, hashedBytes: 0, toHashFiles: 0, toHashBytes: 0 };
  let lastReport = 0;
  const run: ScanRun = {
    ctx,
    opts,
    progress,
    problems: 0,
    // Relaxed commits: a first scan's rows are rebuilt by a rescan; one fsync at the end (syncIndex).
    tx: new TxBatcher(ctx.db, undefined, true, ctx.sharedConnection),
    // Throttled to 10 per second (phase changes are reported by the caller, always).
    report() {
      const now = Date.now();
      if (opts.onProgress && now - lastReport > 100) {
        lastReport = now;
        opts.onProgress({ ...progress });
      }
    },
    problem(path, message) {
      run.problems++;
      opts.onProblem?.({ path, message });
    },
  };
  return run;
}

/** The location's root entry, created or brought up to date. */
function syncRoot(run: ScanRun, loc: Location, st: BigIntStats): Entry {
  const { entries } = run.ctx;
  const fields = fieldsOf(entryFromStats('', st)!, null);
  const root = entries.root(loc.id);
  if (!root) {
    run.tx.tick();
    return entries.createRoot(loc.id, fields);
  }
  if (root.version !== fields.version || root.mode !== fields.mode) {
    run.tx.tick();
    entries.update(root, fields, '');
  }
  return root;
}
