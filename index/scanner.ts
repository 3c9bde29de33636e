import { lstatSync, readdirSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { FsError, toFsError } from '../providers/fs-error';
import { entryFromStats } from '../providers/local/local-provider';
import type { ProviderEntry } from '../providers/provider';
import type { BlobStore } from './blobs';
import type { Db } from './db';
import type { Entry, EntryFields, EntryStore } from './entries';
import type { HashPool } from './hash-pool';
import { IgnoreRules } from './ignore-rules';
import type { Location, LocationStore } from './locations';

/** The `vdfs scan --json` summary (DESIGN.md). */
export interface ScanSummary {
  files: number;
  dirs: number;
  bytes: number;
  hashed: number;
  unchanged: number;
  errors: number;
  seconds: number;
}

export interface ScanProgress {
  phase: 'walk' | 'hash';
  files: number;
  dirs: number;
  bytes: number;
  hashedFiles: number;
  hashedBytes: number;
  toHashFiles: number;
  toHashBytes: number;
}

export interface ScanProblem {
  path: string;
  message: string;
}

export interface ScanContext {
  db: Db;
  entries: EntryStore;
  blobs: BlobStore;
  locations: LocationStore;
  pool: HashPool;
  blockSize: number;
}

export interface ScanOptions {
  onProgress?: (p: ScanProgress) => void;
  onProblem?: (p: ScanProblem) => void;
  /** Hash even files whose size+mtime+inode are unchanged. */
  rehash?: boolean;
}

interface HashJob {
  entry: Entry;
  abs: string;
  rel: string;
  attempts: number;
}

const BATCH = 5000;
const HASH_ATTEMPTS = 3;

/** Groups index writes into transactions of BATCH changes (each commit is fsynced). */
class TxBatcher {
  private open = false;
  private n = 0;
  constructor(private readonly db: Db) {}
  tick(): void {
    if (!this.open) { this.db.exec('BEGIN IMMEDIATE'); this.open = true; }
    if (++this.n >= BATCH) this.flush();
  }
  flush(): void {
    if (this.open) { this.db.exec('COMMIT'); this.open = false; this.n = 0; }
  }
  abort(): void {
    if (this.open) { this.db.exec('ROLLBACK'); this.open = false; this.n = 0; }
  }
}

/** A path for messages whose last name is not UTF-8: invalid bytes shown as \xNN, never replaced. */
export function joinRelRaw(parent: string, raw: Buffer): string {
  let out = '';
  let i = 0;
  while (i < raw.length) {
    // Take the longest prefix that decodes cleanly, escape one byte, go on.
    let j = raw.length;
    while (j > i && !Buffer.from(raw.subarray(i, j).toString('utf8'), 'utf8').equals(raw.subarray(i, j))) j--;
    if (j > i) { out += raw.subarray(i, j).toString('utf8'); i = j; }
    else { out += `\\x${raw[i].toString(16).padStart(2, '0')}`; i++; }
  }
  return parent === '' ? out : `${parent}/${out}`;
}

function fieldsFrom(e: ProviderEntry, hash: string | null): EntryFields {
  return { type: e.type, size: e.size, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, mode: e.mode, version: e.version, hash, target: e.target ?? null };
}

/**
 * Brings the index of one local location in line with its directory: new, changed and
 * removed entries, then BLAKE3 hashes (whole file and per block) of every file whose
 * size+mtime+inode changed. Throws EHOSTDOWN when the root is missing; problems with single
 * files or directories are reported through `onProblem` and counted, never fatal.
 */
export async function scanLocalLocation(ctx: ScanContext, loc: Location, rootPath: string, opts: ScanOptions = {}): Promise<ScanSummary> {
  const started = process.hrtime.bigint();
  const problems = { n: 0 };
  const problem = (path: string, message: string) => { problems.n++; opts.onProblem?.({ path, message }); };
  const rules = new IgnoreRules(loc.options.ignore);
  const { entries } = ctx;

  let rootStat: BigIntStats;
  try {
    // stat, not lstat: the root itself may be a symlink (~/Photos -> /mnt/disk/Photos).
    rootStat = statSync(rootPath, { bigint: true });
  } catch (err) {
    ctx.locations.setOnline(loc.id, false);
    throw new FsError('EHOSTDOWN', `location ${loc.name}: ${rootPath} is not reachable (${toFsError(err, 'stat').code}); its last indexed tree stays visible`);
  }
  if (!rootStat.isDirectory()) throw new FsError('ENOTDIR', `location ${loc.name}: ${rootPath} is not a directory`);
  ctx.locations.setOnline(loc.id, true);

  // Load the location's whole tree once: comparing in memory beats a query per file.
  const byParent = new Map<number, Map<string, Entry>>();
  let root: Entry | undefined;
  for (const e of entries.ofLocation(loc.id)) {
    if (e.parentId === null) { root = e; continue; }
    let m = byParent.get(e.parentId);
    if (!m) byParent.set(e.parentId, (m = new Map()));
    m.set(e.name, e);
  }
  const tx = new TxBatcher(ctx.db);
  const p: ScanProgress = { phase: 'walk', files: 0, dirs: 0, bytes: 0, hashedFiles: 0, hashedBytes: 0, toHashFiles: 0, toHashBytes: 0 };
  const jobs: HashJob[] = [];
  let unchanged = 0;
  let lastReport = 0;
  // Throttled to 10 per second; `force` for phase changes so callers see every phase.
  const report = (force = false) => {
    const now = Date.now();
    if (opts.onProgress && (force || now - lastReport > 100)) { lastReport = now; opts.onProgress({ ...p }); }
  };

  try {
    const rootFields = fieldsFrom(entryFromStats('', rootStat)!, null);
    if (!root) { root = entries.createRoot(loc.id, rootFields); tx.tick(); }
    else if (root.version !== rootFields.version || root.mode !== rootFields.mode) { entries.update(root, rootFields, ''); tx.tick(); }

    const stack: { entry: Entry; abs: string; rel: string }[] = [{ entry: root, abs: rootPath, rel: '' }];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      p.dirs++;
      let names: Buffer[];
      try {
        names = readdirSync(dir.abs, { encoding: 'buffer' });
      } catch (err) {
        problem(dir.rel || '.', `cannot list directory: ${toFsError(err, 'readdir').message}`);
        continue; // keep what was indexed: an unreadable directory is not an empty one
      }
      const known = byParent.get(dir.entry.id) ?? new Map<string, Entry>();
      const seen = new Set<string>();
      for (const raw of names) {
        const name = raw.toString('utf8');
        const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
        if (!Buffer.from(name, 'utf8').equals(raw)) {
          // The index, the JSON output and every front end speak UTF-8: such a name cannot
          // round-trip, and silently replacing bytes would index a file that does not exist.
          problem(joinRelRaw(dir.rel, raw), 'name is not valid UTF-8; not indexed (rename it, e.g. with convmv, to include it)');
          continue;
        }
        const abs = join(dir.abs, name);
        let st: BigIntStats;
        let target: string | undefined;
        try {
          st = lstatSync(abs, { bigint: true });
          if (st.isSymbolicLink()) target = readlinkSync(abs);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problem(rel, toFsError(err, 'lstat').message);
          continue; // vanished between readdir and lstat: treat as deleted
        }
        const pe = entryFromStats(name, st, target);
        if (!pe) continue; // fifo, socket, device
        if (rules.ignores(rel, pe.type === 'dir')) continue;
        seen.add(name);
        let e = known.get(name);
        if (e && e.type !== pe.type) { entries.remove(e, rel); tx.tick(); e = undefined; }
        if (!e) {
          const id = entries.insert(loc.id, dir.entry.id, name, fieldsFrom(pe, null), rel);
          tx.tick();
          e = { id, locationId: loc.id, parentId: dir.entry.id, name, ...fieldsFrom(pe, null) };
        } else if (e.version !== pe.version || e.mode !== pe.mode || e.target !== (pe.target ?? null)) {
          const keepHash = e.type === 'file' && e.version === pe.version ? e.hash : null;
          entries.update(e, fieldsFrom(pe, keepHash), rel);
          tx.tick();
          e = { ...e, ...fieldsFrom(pe, keepHash) };
        }
        if (pe.type === 'dir') stack.push({ entry: e, abs, rel });
        else if (pe.type === 'file') {
          p.files++;
          p.bytes += pe.size;
          if (e.hash && !opts.rehash) unchanged++;
          else { jobs.push({ entry: e, abs, rel, attempts: 0 }); p.toHashFiles++; p.toHashBytes += pe.size; }
        }
        report();
      }
      for (const [name, e] of known) {
        if (!seen.has(name)) { entries.remove(e, dir.rel === '' ? name : `${dir.rel}/${name}`); tx.tick(); }
      }
    }
    tx.flush();
    p.phase = 'hash';
    report(true);
    const hashed = await hashAll(ctx, jobs, p, report, problem);
    ctx.locations.setLastScan(loc.id, Date.now());
    opts.onProgress?.({ ...p });
    return {
      files: p.files, dirs: p.dirs, bytes: p.bytes, hashed, unchanged, errors: problems.n,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  } catch (err) {
    tx.abort();
    throw err;
  }
}

async function hashAll(ctx: ScanContext, jobs: HashJob[], p: ScanProgress, report: () => void, problem: (path: string, msg: string) => void): Promise<number> {
  let hashed = 0;
  const tx = new TxBatcher(ctx.db);
  let flushTimer: NodeJS.Timeout | undefined;
  const scheduleFlush = () => { flushTimer ??= setTimeout(() => { flushTimer = undefined; tx.flush(); }, 200); };

  // Deleted between listing and hashing: it is not there, so it leaves the index now
  // rather than staying as an unhashed ghost until the next scan.
  const gone = (job: HashJob) => {
    ctx.entries.remove(job.entry, job.rel);
    tx.tick();
    p.files--;
    p.bytes -= job.entry.size;
  };
  const run = async (job: HashJob): Promise<void> => {
    for (;;) {
      job.attempts++;
      let r;
      try {
        r = await ctx.pool.hashFile(job.abs, ctx.blockSize);
      } catch (err) {
        if ((err as FsError).code !== 'ENOENT') problem(job.rel, toFsError(err, 'hash').message);
        else gone(job);
        return;
      }
      const version = `${r.ino}:${r.size}:${r.mtimeNs}`;
      if (!r.changed && version === job.entry.version) {
        ctx.blobs.put({ hash: r.hash, size: r.size, blockSize: ctx.blockSize, blockHashes: r.blockHashes });
        ctx.entries.update(job.entry, { ...job.entry, hash: r.hash }, job.rel);
        tx.tick();
        scheduleFlush();
        hashed++;
        p.hashedFiles++;
        p.hashedBytes += r.size;
        report();
        return;
      }
      // Changed while (or since) it was listed: record what it is now and hash again.
      let st: BigIntStats;
      try { st = lstatSync(job.abs, { bigint: true }); } catch { gone(job); return; }
      if (!st.isFile()) return; // replaced by something else; the next scan sees it
      const pe = entryFromStats(job.entry.name, st)!;
      ctx.entries.update(job.entry, fieldsFrom(pe, null), job.rel);
      tx.tick();
      job.entry = { ...job.entry, ...fieldsFrom(pe, null) };
      if (job.attempts >= HASH_ATTEMPTS) {
        problem(job.rel, `changed while being hashed ${HASH_ATTEMPTS} times; left unhashed (scan again when it is quiet)`);
        return;
      }
    }
  };
  try {
    await Promise.all(jobs.map(run));
  } finally {
    if (flushTimer) clearTimeout(flushTimer);
    tx.flush();
  }
  return hashed;
}
