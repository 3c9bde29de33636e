import { Blake3Hasher } from '@napi-rs/blake-hash';
import { promises as fsp, readdirSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';
import { FsError, toFsError } from '../core/fs-error';
import { entryFromStats } from '../providers/local/local-provider';
import type { EntryType, ProviderEntry } from '../core/provider';
import type { BlobStore } from './blobs';
import type { Db } from './db';
import type { Entry, EntryFields, EntryStore } from './entries';
import type { HashPool } from './hash-pool';
import { IgnoreRules } from './ignore-rules';
import { stateRelsIn } from './state-paths';
import { withParent } from '../core/beneath';
import { T_DIR, T_ERROR, T_FILE, T_GONE, T_OTHER, WalkPool, type DirListing } from './walk-pool';
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
  /** vdfs's own state folders (home, cache, staging): never indexed where a location holds them. */
  statePaths?: readonly string[];
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
/**
 * Files listed and not hashed yet, at most: past it the walk waits for the hashers, so a
 * first scan of millions of files holds a bounded queue, not one job per file.
 */
const HASH_BACKLOG = 20_000;
/** Directory listings asked of the walk pool at once (each one is a whole directory in memory). */
const WALK_INFLIGHT = 8;
/** BLAKE3 of no bytes: an empty file needs no read (and no worker round trip) to be hashed. */
export const EMPTY_HASH = new Blake3Hasher().digest('hex');

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

/**
 * What the index holds for one directory's children, for the rescan comparison. Read when the
 * directory's listing arrives, as one string (SQLite's group_concat, NUL-separated: no file
 * name holds a NUL) split lazily: materialising a row object per entry cost more than all the
 * lstat calls, and reading one directory at a time keeps the scan's memory bounded by the
 * largest directory, not by the tree.
 */
class KnownDir {
  private readonly parts: string[];
  /** name -> index of its first field in `parts`; removed as the walk sees each name. */
  readonly left = new Map<string, number>();

  constructor(packed: string) {
    this.parts = packed.split('\0');
    for (let i = 0; i < this.parts.length; i += KNOWN_FIELDS) this.left.set(this.parts[i], i);
  }

  type(i: number): string { return this.parts[i + 1]; }
  version(i: number): string { return this.parts[i + 2]; }
  mode(i: number): number { return Number(this.parts[i + 3]); }
  id(i: number): number { return Number(this.parts[i + 4]); }
  hashed(i: number): boolean { return this.parts[i + 5] === '1'; }
}
const KNOWN_FIELDS = 6;
const KNOWN_SQL = `SELECT group_concat(name || char(0) || type || char(0) || ifnull(version, '') || char(0) || mode || char(0) || id || char(0) || (hash IS NOT NULL), char(0))
  FROM entries WHERE parent_id = ?`;

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
  // Skipped like ignored names: entries indexed there before are removed by this scan.
  const hidden = new Set(stateRelsIn(rootPath, ctx.statePaths ?? []));

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

  const knownOf = ctx.db.prepare(KNOWN_SQL).pluck();
  let emptyBlob = false;
  let emptyHashed = 0;
  let root: Entry | undefined = entries.root(loc.id);
  const tx = new TxBatcher(ctx.db);
  const p: ScanProgress = { phase: 'walk', files: 0, dirs: 0, bytes: 0, hashedFiles: 0, hashedBytes: 0, toHashFiles: 0, toHashBytes: 0 };
  const staged = new Set((ctx.db.prepare("SELECT path FROM uploads WHERE location_id = ? AND state = 'pending'").all(loc.id) as { path: string }[]).map((r) => r.path));
  // Writes staged while the scan runs are newer than the disk too: asked again before a removal.
  const stagedNow = ctx.db.prepare("SELECT 1 FROM uploads WHERE location_id = ? AND path = ? AND state = 'pending'");
  let unchanged = 0;
  let lastReport = 0;
  // Throttled to 10 per second; `force` for phase changes so callers see every phase.
  const report = (force = false) => {
    const now = Date.now();
    if (opts.onProgress && (force || now - lastReport > 100)) { lastReport = now; opts.onProgress({ ...p }); }
  };
  const noRules = rules.onlyDefaults;
  const hasher = startHasher(ctx, rootPath, tx, p, () => report(), problem);
  const walker = new WalkPool();

  try {
    const rootFields = fieldsFrom(entryFromStats('', rootStat)!, null);
    if (!root) { root = entries.createRoot(loc.id, rootFields); tx.tick(); }
    else if (root.version !== rootFields.version || root.mode !== rootFields.mode) { entries.update(root, rootFields, ''); tx.tick(); }

    // Directories are listed on worker threads (readdir + lstat), several at once; each
    // listing is compared with the index here, on the main thread, as it arrives.
    const processDir = (dir: { id: number; abs: string; rel: string }, l: DirListing) => {
      p.dirs++;
      const names = l.names;
      // Names are read as UTF-8 strings (fast); only a directory holding a U+FFFD is read
      // again as bytes, to tell real U+FFFD characters from bytes that are not UTF-8.
      let invalid: Set<string> | undefined;
      if (names.some((n) => n.includes('\uFFFD'))) {
        invalid = new Set();
        for (const raw of readdirSync(dir.abs, { encoding: 'buffer' })) {
          const name = raw.toString('utf8');
          if (Buffer.from(name, 'utf8').equals(raw)) continue;
          invalid.add(name);
          // The index, the JSON output and every front end speak UTF-8: such a name cannot
          // round-trip, and silently replacing bytes would index a file that does not exist.
          problem(joinRelRaw(dir.rel, raw), 'name is not valid UTF-8; not indexed (rename it, e.g. with convmv, to include it)');
        }
      }
      const errors = new Map(l.errors);
      // What is left in `known` after the loop was deleted (or is now ignored).
      const text = knownOf.get(dir.id) as string | null;
      const known = text === null ? undefined : new KnownDir(text);
      const prefix = dir.abs.endsWith('/') ? dir.abs : `${dir.abs}/`;
      for (let i = 0; i < names.length; i++) {
        const name = names[i];
        if (invalid?.has(name)) continue;
        const code = l.types[i];
        const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
        if (hidden.size > 0 && hidden.has(rel)) continue;
        // Staged bytes waiting for upload (write-back) are newer than the disk: leave their entry alone.
        if (staged.has(rel)) { known?.left.delete(name); continue; }
        if (code === T_ERROR) { problem(rel, errors.get(i) ?? 'lstat failed'); continue; }
        // Vanished between readdir and lstat (treated as deleted); fifo, socket, device (skipped).
        if (code === T_GONE || code === T_OTHER) continue;
        const type: EntryType = code === T_FILE ? 'file' : code === T_DIR ? 'dir' : 'symlink';
        const abs = prefix + name;
        if (!(noRules ? rules.ignoresName(name) : rules.ignores(rel, type === 'dir'))) {
          const version = l.versions[i];
          const mode = l.modes[i];
          const k = known?.left.get(name);
          if (k !== undefined) known!.left.delete(name);
          let id: number;
          let hash: string | null = null;
          let fresh = false;
          if (k !== undefined && known!.type(k) === type && known!.version(k) === version && known!.mode(k) === mode) {
            // Unchanged (the common case on a rescan): no object, no readlink, no write.
            id = known!.id(k);
            hash = known!.hashed(k) ? 'known' : null;
          } else {
            let target: string | null = null;
            if (type === 'symlink') {
              try { target = readlinkSync(abs); } catch { continue; }
            }
            // An empty file's hash is known without reading it: one index write, no hash job.
            // (Written to since the lstat? Then its version moved, and the next scan hashes it.)
            if (type === 'file' && l.sizes[i] === 0 && !opts.rehash) {
              hash = EMPTY_HASH;
              fresh = true;
              emptyHashed++;
              p.hashedFiles++;
              if (!emptyBlob) { ctx.blobs.put({ hash, size: 0, blockSize: ctx.blockSize, blockHashes: Buffer.alloc(0) }); emptyBlob = true; }
            }
            const fields: EntryFields = { type, size: type === 'dir' ? 0 : l.sizes[i], mtimeSec: l.mtimeSec[i], mtimeNsec: l.mtimeNsec[i], mode, version, hash, target };
            // Not in the snapshot of the directory but in the index now: a write through the
            // mount added it while this walk ran. It is updated, never inserted twice (EEXIST).
            const old = k === undefined ? entries.child(dir.id, name) : entries.get(known!.id(k));
            if (old && old.type !== type) { entries.remove(old, rel); tx.tick(); }
            if (!old || old.type !== type) {
              id = entries.insert(loc.id, dir.id, name, fields, rel);
            } else {
              id = old.id;
              // Same content version, other mode: the hash stays valid.
              if (type === 'file' && old.version === version) hash = old.hash ?? hash;
              entries.update(old, { ...fields, hash }, rel);
            }
            tx.tick();
          }
          if (type === 'dir') schedule({ id, abs, rel, ino: version.slice(0, version.indexOf(':')) });
          else if (type === 'file') {
            const size = l.sizes[i];
            p.files++;
            p.bytes += size;
            if (fresh) { /* an empty file, hashed above */ }
            else if (hash && !opts.rehash) unchanged++;
            else {
              hasher.add({ entry: { id, locationId: loc.id, parentId: dir.id, name, type, size, mtimeSec: l.mtimeSec[i], mtimeNsec: l.mtimeNsec[i], mode, version, hash: null, target: null }, abs, rel, attempts: 0 });
              p.toHashFiles++;
              p.toHashBytes += size;
            }
          }
        }
      }
      if (known) {
        for (const [name, k] of known.left) {
          const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
          if (staged.has(rel) || stagedNow.get(loc.id, rel)) continue;
          const old = entries.get(known.id(k));
          if (old) { entries.remove(old, dir.rel === '' ? name : `${dir.rel}/${name}`); tx.tick(); }
        }
      }
      if (opts.onProgress) report();
    };

    // Directories found and not listed yet wait here (last in, first out: depth-first keeps
    // this small); at most WALK_INFLIGHT are being listed, and none while the hash backlog is full.
    type Dir = { id: number; abs: string; rel: string; ino?: string };
    const waiting: Dir[] = [];
    let active = 0;
    let failure: unknown;
    let walked!: () => void;
    const allWalked = new Promise<void>((r) => (walked = r));
    function schedule(dir: Dir): void {
      waiting.push(dir);
    }
    function pump(): void {
      while (active < WALK_INFLIGHT && waiting.length > 0 && (hasher.backlog < HASH_BACKLOG || failure !== undefined)) list(waiting.pop()!);
      if (active === 0 && (waiting.length === 0 || failure !== undefined)) walked();
    }
    function list(dir: Dir): void {
      active++;
      walker
        .list(dir.abs, dir.ino)
        .then(
          (l) => { if (failure === undefined) processDir(dir, l); },
          // Keep what was indexed: an unreadable directory is not an empty one.
          (err) => { if (failure === undefined) problem(dir.rel || '.', `cannot list directory: ${toFsError(err, 'readdir').message}`); },
        )
        .catch((err) => { failure ??= err; })
        .finally(() => { active--; pump(); });
    }
    hasher.onDrain(pump);
    schedule({ id: root.id, abs: rootPath, rel: '' });
    pump();
    await allWalked;
    if (failure !== undefined) throw failure;
    await walker.close(); // free its threads for hashing
    tx.flush();
    p.phase = 'hash';
    report(true);
    const hashed = (await hasher.finish()) + emptyHashed;
    ctx.locations.setLastScan(loc.id, Date.now());
    opts.onProgress?.({ ...p });
    return {
      files: p.files, dirs: p.dirs, bytes: p.bytes, hashed, unchanged, errors: problems.n,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  } catch (err) {
    hasher.cancel();
    tx.abort();
    throw err;
  } finally {
    await walker.close();
  }
}

/**
 * Hashes files as the walk finds them (so the workers start at once), sharing the walk's
 * transaction batcher: one connection, one open transaction at a time.
 */
function startHasher(ctx: ScanContext, rootPath: string, tx: TxBatcher, p: ScanProgress, report: () => void, problem: (path: string, msg: string) => void) {
  let hashed = 0;
  let cancelled = false;
  let backlog = 0;
  let failed: unknown;
  let drained: (() => void) | undefined;
  let idle: (() => void) | undefined;
  // Every job's result promise is dropped once counted: nothing per file outlives its hash.
  const settle = () => {
    backlog--;
    if (backlog < HASH_BACKLOG / 2) drained?.();
    if (backlog === 0) idle?.();
  };
  let flushTimer: NodeJS.Timeout | undefined;
  // While only hash results arrive, commit at least every 200 ms so a long scan's progress
  // survives a kill and other readers see it.
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
        if (cancelled) return;
      } catch (err) {
        if (cancelled) return;
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
      // Changed while (or since) it was listed: record what it is now and hash again. Looked
      // up without following a symlink on the way: a directory swapped for a link to somewhere
      // else must not make the scan record (and then hash) a file outside the location.
      let st: BigIntStats;
      try { st = await withParent(rootPath, job.rel, (at) => fsp.lstat(at, { bigint: true })); } catch { gone(job); return; }
      if (!st.isFile()) return; // replaced by something else; the next scan sees it
      const pe = entryFromStats(job.entry.name, st)!;
      ctx.entries.update(job.entry, fieldsFrom(pe, null), job.rel);
      tx.tick();
      scheduleFlush();
      job.entry = { ...job.entry, ...fieldsFrom(pe, null) };
      if (job.attempts >= HASH_ATTEMPTS) {
        problem(job.rel, `changed while being hashed ${HASH_ATTEMPTS} times; left unhashed (scan again when it is quiet)`);
        return;
      }
    }
  };
  return {
    add(job: HashJob): void {
      backlog++;
      // An index write that fails (disk full) fails the scan, at finish().
      run(job).catch((err) => { failed ??= err; }).finally(settle);
    },
    get backlog(): number { return backlog; },
    /** Called when the backlog falls below half its bound (the walk may go on). */
    onDrain(f: () => void): void { drained = f; },
    /** After a failed walk: results still arriving are dropped, nothing more is written. */
    cancel(): void {
      cancelled = true;
      if (flushTimer) clearTimeout(flushTimer);
    },
    async finish(): Promise<number> {
      try {
        if (backlog > 0) await new Promise<void>((r) => (idle = r));
        if (failed !== undefined) throw failed;
      } finally {
        if (flushTimer) clearTimeout(flushTimer);
        tx.flush();
      }
      return hashed;
    },
  };
}
