import type { Readable } from 'node:stream';
import { FsError, toFsError } from '../core/fs-error';
import { checkName, joinRel, parentOf, baseName } from '../core/paths';
import type { Provider } from '../core/provider';
import { BlockHasher, type BlockHashes } from './block-hasher';
import type { Entry, EntryFields } from './entries';
import type { Location } from './locations';
import type { ScanContext, ScanOptions, ScanProgress, ScanSummary } from './scan-types';
import { TxBatcher } from './tx-batcher';

/** One object of a remote listing, relative to the location; a `dir/` marker ends with '/'. */
export interface ListedObject {
  rel: string;
  size: number;
  version: string;
  lastModified?: Date;
}

/** A provider whose whole tree can be listed in a few paged requests (S3; not a directory walk). */
export interface ListableProvider extends Provider {
  /** Every object under the location. Throws FsError (EHOSTDOWN when unreachable). */
  walk(): AsyncIterable<ListedObject>;
}

export function isListable(p: Provider): p is ListableProvider {
  return typeof (p as Partial<ListableProvider>).walk === 'function';
}

export interface RemoteScanOptions extends ScanOptions {
  /** Download and hash files whose hash is unknown (every file with `rehash`). */
  hash?: boolean;
}

const BATCH = 5000;
const HASH_CONCURRENCY = 2;
const FILE_MODE = 0o644;
const DIR_MODE = 0o755;

interface Node {
  fields: EntryFields;
  /** Children by name, for directories. */
  children?: Map<string, Node>;
}

function dirNode(): Node {
  return { fields: { type: 'dir', size: 0, mtimeSec: 0, mtimeNsec: 0, mode: DIR_MODE, version: 'dir', hash: null, target: null }, children: new Map() };
}

function validPath(rel: string): boolean {
  try {
    for (const part of rel.split('/')) checkName(part);
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds the directory tree a listing implies: prefixes become directories, `dir/` markers
 * keep empty ones, a directory's mtime is its newest object's. A key that is both an object
 * and a prefix shows as the directory (reported); keys that are no POSIX path (`a//b`, `..`)
 * are reported and skipped.
 */
function buildTree(objects: ListedObject[], problem: (path: string, msg: string) => void): Node {
  const root = dirNode();
  const dirOf = (rel: string): Node | undefined => {
    let cur = root;
    if (rel === '') return cur;
    for (const part of rel.split('/')) {
      let next = cur.children!.get(part);
      if (next && !next.children) {
        problem(joinRel(parentOf(rel), part), 'is both an object and a prefix; the directory is shown');
        next = undefined;
      }
      if (!next) {
        next = dirNode();
        cur.children!.set(part, next);
      }
      cur = next;
    }
    return cur;
  };
  for (const o of objects) {
    const marker = o.rel.endsWith('/');
    const rel = marker ? o.rel.slice(0, -1) : o.rel;
    if (!validPath(rel)) {
      problem(o.rel, 'key is not a valid path (empty, "." or ".." component, or a name over 255 bytes); not indexed');
      continue;
    }
    const t = o.lastModified ? o.lastModified.getTime() : 0;
    const fields: EntryFields = {
      type: 'file',
      size: o.size,
      mtimeSec: Math.floor(t / 1000),
      mtimeNsec: (t % 1000) * 1e6,
      mode: FILE_MODE,
      version: o.version,
      hash: null,
      target: null,
    };
    if (marker) {
      dirOf(rel);
      continue;
    }
    const parent = dirOf(parentOf(rel))!;
    const name = baseName(rel);
    if (parent.children!.get(name)?.children) {
      problem(rel, 'is both an object and a prefix; the directory is shown');
      continue;
    }
    parent.children!.set(name, { fields });
  }
  // A directory's mtime: its newest descendant's (S3 has no directory times).
  const settle = (n: Node): number => {
    let max = 0;
    for (const c of n.children!.values()) {
      const m = c.children ? settle(c) : c.fields.mtimeSec * 1000 + c.fields.mtimeNsec / 1e6;
      if (m > max) max = m;
    }
    n.fields.mtimeSec = Math.floor(max / 1000);
    n.fields.mtimeNsec = Math.round(max % 1000) * 1e6;
    return max;
  };
  settle(root);
  return root;
}

/** One remote scan's state: what it scans, its progress and its problem count. */
interface RemoteScan {
  ctx: ScanContext;
  loc: Location;
  provider: ListableProvider;
  opts: RemoteScanOptions;
  p: ScanProgress;
  problems: number;
  problem(path: string, message: string): void;
  /** Reports progress (at most every 100 ms unless forced). */
  report(force?: boolean): void;
}

/** A file to download and hash. */
interface HashJob {
  id: number;
  rel: string;
  version: string;
  size: number;
}

function remoteScan(ctx: ScanContext, loc: Location, provider: ListableProvider, opts: RemoteScanOptions): RemoteScan {
  let lastReport = 0;
  const s: RemoteScan = {
    ctx,
    loc,
    provider,
    opts,
    p: { phase: 'walk', files: 0, dirs: 0, bytes: 0, hashedFiles: 0, hashedBytes: 0, toHashFiles: 0, toHashBytes: 0 },
    problems: 0,
    problem(path, message) {
      s.problems++;
      opts.onProblem?.({ path, message });
    },
    report(force = false) {
      const now = Date.now();
      if (opts.onProgress && (force || now - lastReport > 100)) {
        lastReport = now;
        opts.onProgress({ ...s.p });
      }
    },
  };
  return s;
}

/** The whole listing. Marks the location offline and throws EHOSTDOWN when unreachable (online otherwise); throws what the listing throws. */
async function listAll(s: RemoteScan): Promise<ListedObject[]> {
  const objects: ListedObject[] = [];
  try {
    for await (const o of s.provider.walk()) {
      objects.push(o);
      if (!o.rel.endsWith('/')) {
        s.p.files++;
        s.p.bytes += o.size;
      }
      s.report();
    }
  } catch (err) {
    const fe = toFsError(err, `scan ${s.loc.name}`);
    if (fe.code === 'EHOSTDOWN') {
      s.ctx.locations.setOnline(s.loc.id, false);
      throw new FsError('EHOSTDOWN', `location ${s.loc.name}: ${fe.message}; its last indexed tree stays visible`, err);
    }
    throw fe;
  }
  s.ctx.locations.setOnline(s.loc.id, true);
  return objects;
}

/**
 * Brings the index in line with `tree`, in batched transactions: unchanged entries stay,
 * changed ones are updated (a file's new version has no hash yet), new ones inserted and
 * vanished ones removed; paths with staged bytes waiting for upload are left alone. Returns
 * the files to hash (with `opts.hash`) and how many were unchanged. Throws SQLite errors.
 */
function applyTree(s: RemoteScan, tree: Node): { toHash: HashJob[]; unchanged: number } {
  const { db, entries } = s.ctx;
  const { p, opts, loc } = s;
  const tx = new TxBatcher(db, BATCH);
  const tick = () => tx.tick();
  const toHash: HashJob[] = [];
  const staged = new Set((db.prepare("SELECT path FROM uploads WHERE location_id = ? AND state = 'pending'").all(loc.id) as { path: string }[]).map((r) => r.path));
  let unchanged = 0;
  try {
    let root: Entry | undefined = entries.root(loc.id);
    if (!root) {
      tick();
      root = entries.createRoot(loc.id, tree.fields);
    } else if (root.mtimeSec !== tree.fields.mtimeSec || root.type !== 'dir') {
      tick();
      entries.update(root, tree.fields, '');
    }
    const stack: { id: number; rel: string; node: Node }[] = [{ id: root.id, rel: '', node: tree }];
    while (stack.length) {
      const dir = stack.pop()!;
      p.dirs++;
      const known = new Map(entries.children(dir.id).map((e) => [e.name, e]));
      for (const [name, node] of dir.node.children!) {
        const rel = joinRel(dir.rel, name);
        const old = known.get(name);
        known.delete(name);
        // Staged bytes waiting for upload are newer than the listing: leave their entry alone.
        if (staged.has(rel)) continue;
        const f = node.fields;
        let id: number;
        let hash: string | null = null;
        if (old && old.type === f.type && (f.type === 'dir' ? old.mtimeSec === f.mtimeSec : old.version === f.version && old.size === f.size)) {
          id = old.id;
          hash = old.hash;
        } else if (old && old.type === f.type) {
          tick();
          // A directory keeps its row (its subtree hangs off it); a file's new version has no hash yet.
          entries.update(old, f, rel);
          id = old.id;
        } else {
          tick();
          if (old) entries.remove(old, rel);
          id = entries.insert(loc.id, dir.id, name, f, rel);
        }
        if (node.children) stack.push({ id, rel, node });
        else {
          p.files++;
          p.bytes += f.size;
          if (hash && !opts.rehash) unchanged++;
          else if (opts.hash) {
            toHash.push({ id, rel, version: f.version!, size: f.size });
            p.toHashFiles++;
            p.toHashBytes += f.size;
          }
        }
      }
      for (const [name, old] of known) {
        if (staged.has(joinRel(dir.rel, name))) continue;
        tick();
        entries.remove(old, joinRel(dir.rel, name));
      }
      s.report();
    }
    tx.flush();
  } catch (err) {
    tx.abort();
    throw err;
  }
  return { toHash, unchanged };
}

/**
 * Downloads and hashes `toHash`, HASH_CONCURRENCY at a time; a file whose version changed in
 * the index meanwhile is left unhashed. Failures are problems, never thrown. Returns how many were hashed.
 */
async function hashAll(s: RemoteScan, toHash: HashJob[]): Promise<number> {
  const { ctx, p } = s;
  let hashed = 0;
  let next = 0;
  const worker = async () => {
    while (next < toHash.length) {
      const job = toHash[next++];
      try {
        const r = await hashStream(await s.provider.readStream(job.rel, { version: job.version }), ctx.blockSize, (n) => {
          p.hashedBytes += n;
          s.report();
        });
        if (r.size !== job.size) throw new FsError('EIO', `read ${r.size} bytes, the listing said ${job.size}`);
        const cur = ctx.entries.get(job.id);
        // Changed (or gone) in the index while downloading: that hash belongs to nothing.
        if (!cur || cur.version !== job.version) continue;
        ctx.db
          .transaction(() => {
            ctx.blobs.put({ hash: r.hash, size: r.size, blockSize: ctx.blockSize, blockHashes: r.blockHashes });
            ctx.entries.update(cur, { ...cur, hash: r.hash }, job.rel);
          })
          .immediate();
        hashed++;
        p.hashedFiles++;
      } catch (err) {
        const fe = toFsError(err, 'hash');
        s.problem(job.rel, fe.code === 'ESTALE' ? 'changed on the server while being hashed; left unhashed (scan again)' : `cannot hash: ${fe.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: HASH_CONCURRENCY }, worker));
  return hashed;
}

/**
 * Indexes a listable (remote) location from its listing: size, version (ETag) and mtime of
 * every object, prefixes as directories; inserts, updates and removes entries through
 * EntryStore (with the change log), in batched transactions. Nothing is downloaded unless
 * `hash` is set: then files without a hash are streamed and hashed (BLAKE3 whole and per block,
 * as b3sum), and a file whose version changed meanwhile is left unhashed. Throws EHOSTDOWN
 * (the location is marked offline; its last indexed tree stays) or what the listing throws;
 * problems with single objects go to `onProblem` and are counted.
 */
export async function scanRemoteLocation(ctx: ScanContext, loc: Location, provider: ListableProvider, opts: RemoteScanOptions = {}): Promise<ScanSummary> {
  const started = process.hrtime.bigint();
  const s = remoteScan(ctx, loc, provider, opts);
  const tree = buildTree(await listAll(s), (path, message) => s.problem(path, message));
  s.p.files = 0;
  s.p.bytes = 0;
  const { toHash, unchanged } = applyTree(s, tree);
  s.p.phase = 'hash';
  s.report(true);
  const hashed = await hashAll(s, toHash);
  ctx.locations.setLastScan(loc.id, Date.now());
  opts.onProgress?.({ ...s.p });
  const p = s.p;
  return { files: p.files, dirs: p.dirs, bytes: p.bytes, hashed, unchanged, errors: s.problems, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/**
 * BLAKE3 of a stream, whole and per block of `blockSize` (32 bytes per block, concatenated),
 * exactly as the local hasher and b3sum compute them. Throws what the stream throws.
 */
export async function hashStream(s: Readable, blockSize: number, onBytes?: (n: number) => void): Promise<BlockHashes> {
  const h = new BlockHasher(blockSize);
  for await (const chunk of s as AsyncIterable<Buffer>) {
    h.update(chunk);
    onBytes?.(chunk.length);
  }
  return h.digest();
}
