import { Blake3Hasher } from '@napi-rs/blake-hash';
import { readdirSync, readlinkSync } from 'node:fs';
import type { Statement } from 'better-sqlite3';
import type { EntryType } from '../core/provider';
import type { FsError } from '../core/fs-error';
import type { Entry, EntryFields } from './entries';
import { T_BLOCKDEV, T_CHARDEV, T_DIR, T_ERROR, T_FIFO, T_FILE, T_GONE, T_OTHER, T_SOCKET, T_SYMLINK, type DirListing, namesPresent } from './dir-list';
import type { IgnoreRules } from './ignore-rules';
import type { Location } from './locations';
import type { HashJob } from './scan-hash';
import type { ScanRun } from './scan-types';
import type { WalkDir } from './scan-walk';

/** Entry type of each listing type code (T_GONE, T_OTHER and T_ERROR have none). */
const TYPE_OF_CODE: Partial<Record<number, EntryType>> = {
  [T_FILE]: 'file',
  [T_DIR]: 'dir',
  [T_SYMLINK]: 'symlink',
  [T_FIFO]: 'fifo',
  [T_SOCKET]: 'socket',
  [T_CHARDEV]: 'chardev',
  [T_BLOCKDEV]: 'blockdev',
};

/** BLAKE3 of no bytes: an empty file needs no read (and no worker round trip) to be hashed. */
export const EMPTY_HASH = new Blake3Hasher().digest('hex');

/** A path for messages whose last name is not UTF-8: invalid bytes shown as \xNN, never replaced. */
export function joinRelRaw(parent: string, raw: Buffer): string {
  let out = '';
  let i = 0;
  while (i < raw.length) {
    // Take the longest prefix that decodes cleanly, escape one byte, go on.
    let j = raw.length;
    while (j > i && !Buffer.from(raw.subarray(i, j).toString('utf8'), 'utf8').equals(raw.subarray(i, j))) j--;
    if (j > i) {
      out += raw.subarray(i, j).toString('utf8');
      i = j;
    } else {
      out += `\\x${raw[i].toString(16).padStart(2, '0')}`;
      i++;
    }
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

  type(i: number): string {
    return this.parts[i + 1];
  }
  version(i: number): string {
    return this.parts[i + 2];
  }
  mode(i: number): number {
    return Number(this.parts[i + 3]);
  }
  id(i: number): number {
    return Number(this.parts[i + 4]);
  }
  hashed(i: number): boolean {
    return this.parts[i + 5] === '1';
  }
}
const KNOWN_FIELDS = 6;
const KNOWN_SQL = `SELECT group_concat(name || char(0) || type || char(0) || ifnull(version, '') || char(0) || mode || char(0) || id || char(0) || (hash IS NOT NULL), char(0))
  FROM entries WHERE parent_id = ?`;

/** Where the diff stage sends what it finds. */
export interface DiffSinks {
  /** A sub-directory to walk. */
  dir(d: WalkDir): void;
  /** A file whose hash is unknown or stale. */
  hash(job: HashJob): void;
}

/** A listed name's index row, before it is written. */
interface Row {
  fields: EntryFields;
  hash: string | null;
  /** An empty file, hashed already. */
  fresh: boolean;
}

/** New names of one directory inserted with one statement (EntryStore.insertMany). */
const INSERT_BATCH = 100;

/** Where one listed name stands against the index. */
interface Seen {
  dir: WalkDir;
  l: DirListing;
  i: number;
  name: string;
  rel: string;
  type: EntryType;
  known: KnownDir | undefined;
}

/**
 * The diff stage: compares each directory listing with the index rows of that directory, on
 * the main thread, and writes what changed (inserts, updates, removals, through EntryStore
 * and so the change log) in the run's batched transactions. New sub-directories go to the
 * walk, files without a valid hash to the hash stage. Throws what an index write throws.
 */
export class DirDiff {
  private readonly knownOf: Statement;
  private emptyBlob = false;
  /** New names of the directory being applied, not inserted yet. */
  private queued: { s: Seen; abs: string; row: Row }[] = [];
  /** Files whose hash was still valid. */
  unchanged = 0;
  /** Empty files, hashed without a read. */
  emptyHashed = 0;

  constructor(
    private readonly run: ScanRun,
    private readonly loc: Location,
    private readonly rules: IgnoreRules,
    /** vdfs state folders inside the location: skipped like ignored names (and so removed). */
    private readonly hidden: ReadonlySet<string>,
    /** Paths with staged bytes waiting for upload (write-back): newer than the disk, left alone. */
    private readonly staged: ReadonlySet<string>,
    private readonly sinks: DiffSinks,
  ) {
    this.knownOf = run.ctx.db.prepare(KNOWN_SQL).pluck();
    this.stagedNow = run.ctx.db.prepare("SELECT 1 FROM uploads WHERE location_id = ? AND path = ? AND state = 'pending'").pluck();
  }

  /** Writes staged while the scan runs are newer than the disk too: asked again before a removal. */
  private readonly stagedNow: Statement;

  /** One directory's listing against the index. */
  apply(dir: WalkDir, l: DirListing): void {
    this.run.progress.dirs++;
    const invalid = this.invalidNames(dir, l.names);
    const errors = new Map(l.errors);
    // What is left in `known` after the loop was deleted (or is now ignored).
    const text = this.knownOf.get(dir.id) as string | null;
    const known = text === null ? undefined : new KnownDir(text);
    const prefix = dir.abs.endsWith('/') ? dir.abs : `${dir.abs}/`;
    for (let i = 0; i < l.names.length; i++) {
      const name = l.names[i];
      if (invalid?.has(name)) continue;
      const code = l.types[i];
      const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
      if (this.hidden.size > 0 && this.hidden.has(rel)) continue;
      if (this.staged.has(rel)) {
        known?.left.delete(name);
        continue;
      }
      if (code === T_ERROR) {
        this.run.problem(rel, errors.get(i) ?? 'lstat failed');
        continue;
      }
      // Vanished between readdir and lstat (treated as deleted), or a type no entry has.
      if (code === T_GONE || code === T_OTHER) continue;
      const type = TYPE_OF_CODE[code]!;
      if (this.rules.onlyDefaults ? this.rules.ignoresName(name) : this.rules.ignores(rel, type === 'dir')) continue;
      this.child({ dir, l, i, name, rel, type, known }, prefix + name);
    }
    this.insertQueued();
    if (known) this.removeLeft(dir, known, l.names);
    if (this.run.opts.onProgress) this.run.report();
  }

  /**
   * Names are read as UTF-8 strings (fast); only a directory holding a U+FFFD is read again as
   * bytes, to tell real U+FFFD characters from bytes that are not UTF-8. The index, the JSON
   * output and every front end speak UTF-8: such a name cannot round-trip, and silently
   * replacing bytes would index a file that does not exist, so it is reported and skipped.
   */
  private invalidNames(dir: WalkDir, names: string[]): Set<string> | undefined {
    if (!names.some((n) => n.includes('\uFFFD'))) return undefined;
    const invalid = new Set<string>();
    for (const raw of readdirSync(dir.abs, { encoding: 'buffer' })) {
      const name = raw.toString('utf8');
      if (Buffer.from(name, 'utf8').equals(raw)) continue;
      invalid.add(name);
      this.run.problem(joinRelRaw(dir.rel, raw), 'name is not valid UTF-8; not indexed (rename it, e.g. with convmv, to include it)');
    }
    return invalid;
  }

  private child(s: Seen, abs: string): void {
    const { l, i, known } = s;
    const version = l.versions[i];
    const k = known?.left.get(s.name);
    if (k !== undefined) known!.left.delete(s.name);
    if (k !== undefined && known!.type(k) === s.type && known!.version(k) === version && known!.mode(k) === l.modes[i]) {
      // Unchanged (the common case on a rescan): no object, no readlink, no write.
      this.placed(s, abs, known!.id(k), known!.hashed(k) ? 'known' : null, false);
      return;
    }
    const row = this.rowOf(s, abs);
    if (!row) return;
    // New (the common case on a first scan): inserted with the directory's other new names.
    if (k === undefined) return this.queue(s, abs, row);
    const w = this.write(s, row, known!.id(k));
    if (w) this.placed(s, abs, w.id, w.hash, w.fresh);
  }

  /** Where a written (or unchanged) name goes next: a directory to the walk, a file to hashing. */
  private placed(s: Seen, abs: string, id: number, hash: string | null, fresh: boolean): void {
    if (s.type === 'dir') this.sinks.dir({ id, abs, rel: s.rel, ino: s.l.versions[s.i].slice(0, s.l.versions[s.i].indexOf(':')) });
    else if (s.type === 'file') this.file(s, abs, id, hash, fresh);
  }

  /** A new name, inserted with up to INSERT_BATCH - 1 others of its directory. */
  private queue(s: Seen, abs: string, row: Row): void {
    this.queued.push({ s, abs, row });
    if (this.queued.length >= INSERT_BATCH) this.insertQueued();
  }

  private insertQueued(): void {
    const q = this.queued;
    if (q.length === 0) return;
    this.queued = [];
    this.run.tx.tick(q.length);
    let ids: number[];
    try {
      ids = this.run.ctx.entries.insertMany(
        this.loc.id,
        q[0].s.dir.id,
        q.map(({ s, row }) => ({ name: s.name, fields: row.fields, path: s.rel })),
      );
    } catch (err) {
      if ((err as FsError).code !== 'EEXIST') throw err;
      // A write through the mount added one of these names while the walk ran: one by one.
      for (const { s, abs, row } of q) {
        const w = this.write(s, row, undefined);
        if (w) this.placed(s, abs, w.id, w.hash, w.fresh);
      }
      return;
    }
    for (let j = 0; j < q.length; j++) this.placed(q[j].s, q[j].abs, ids[j], q[j].row.hash, q[j].row.fresh);
  }

  /** The index row of a listed name. Undefined when it vanished meanwhile (a symlink's readlink failed). */
  private rowOf(s: Seen, abs: string): Row | undefined {
    const { l, i, type } = s;
    let target: string | null = null;
    if (type === 'symlink') {
      try {
        target = readlinkSync(abs);
      } catch {
        return undefined;
      }
    }
    let hash: string | null = null;
    // An empty file's hash is known without reading it: one index write, no hash job.
    // (Written to since the lstat? Then its version moved, and the next scan hashes it.)
    const fresh = type === 'file' && l.sizes[i] === 0 && !this.run.opts.rehash;
    if (fresh) hash = this.emptyHash();
    const rdev = type === 'chardev' || type === 'blockdev' ? l.rdevs[i] : null;
    const fields: EntryFields = {
      type,
      size: type === 'dir' ? 0 : l.sizes[i],
      mtimeSec: l.mtimeSec[i],
      mtimeNsec: l.mtimeNsec[i],
      mode: l.modes[i],
      version: l.versions[i],
      hash,
      target,
      rdev,
    };
    return { fields, hash, fresh };
  }

  /**
   * A new or changed entry, written to the index on its own. Undefined when the name was staged
   * since the walk began: the entry describes the staged bytes (and a chmod or touch of them),
   * which are newer than the disk, so it is left alone.
   */
  private write(s: Seen, row: Row, knownId: number | undefined): { id: number; hash: string | null; fresh: boolean } | undefined {
    const { type } = s;
    const { entries } = this.run.ctx;
    const { fields, fresh } = row;
    let { hash } = row;
    const tx = this.run.tx;
    tx.tick();
    let old: Entry | undefined;
    if (knownId === undefined) {
      try {
        return { id: entries.insert(this.loc.id, s.dir.id, s.name, fields, s.rel), hash, fresh };
      } catch (err) {
        if ((err as FsError).code !== 'EEXIST') throw err;
        // Not in the snapshot of the directory but in the index now: a write through the
        // mount added it while this walk ran. It is updated, never inserted twice.
        old = entries.child(s.dir.id, s.name);
      }
    } else old = entries.get(knownId);
    if (old && this.stagedNow.get(this.loc.id, s.rel) !== undefined) return undefined;
    if (old && old.type !== type) {
      tx.tick();
      entries.remove(old, s.rel);
    }
    if (!old || old.type !== type) return { id: entries.insert(this.loc.id, s.dir.id, s.name, fields, s.rel), hash, fresh };
    // Same content version, other mode: the hash stays valid.
    if (type === 'file' && old.version === fields.version) hash = old.hash ?? hash;
    entries.update(old, { ...fields, hash }, s.rel);
    return { id: old.id, hash, fresh };
  }

  private emptyHash(): string {
    this.emptyHashed++;
    this.run.progress.hashedFiles++;
    if (!this.emptyBlob) {
      this.run.ctx.blobs.put({ hash: EMPTY_HASH, size: 0, blockSize: this.run.ctx.blockSize, blockHashes: Buffer.alloc(0) });
      this.emptyBlob = true;
    }
    return EMPTY_HASH;
  }

  private file(s: Seen, abs: string, id: number, hash: string | null, fresh: boolean): void {
    const { l, i } = s;
    const p = this.run.progress;
    const size = l.sizes[i];
    p.files++;
    p.bytes += size;
    if (fresh) return; // an empty file, hashed already
    if (hash && !this.run.opts.rehash) {
      this.unchanged++;
      return;
    }
    const entry = {
      id,
      locationId: this.loc.id,
      parentId: s.dir.id,
      name: s.name,
      type: s.type,
      size,
      mtimeSec: l.mtimeSec[i],
      mtimeNsec: l.mtimeNsec[i],
      mode: l.modes[i],
      version: l.versions[i],
      hash: null,
      target: null,
      rdev: null,
    };
    this.sinks.hash({ entry, abs, rel: s.rel, attempts: 0 });
    p.toHashFiles++;
    p.toHashBytes += size;
  }

  /** Index rows the listing did not show: deleted (or ignored now), unless staged. */
  private removeLeft(dir: WalkDir, known: KnownDir, listed: string[]): void {
    const { entries } = this.run.ctx;
    if (known.left.size === 0) return;
    // A name the listing did not have but the disk has now was made after the listing (by the
    // mount, while this scan ran): its writer indexed it, so it is kept. (Listed names left here
    // are ignored, hidden or unreadable ones: removed.)
    const inListing = new Set(listed);
    const present = namesPresent(
      dir.abs,
      dir.ino,
      [...known.left.keys()].filter((n) => !inListing.has(n)),
    );
    for (const [name, k] of known.left) {
      const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
      if (present.has(name)) continue;
      if (this.staged.has(rel) || this.stagedNow.get(this.loc.id, rel) !== undefined) continue;
      const old = entries.get(known.id(k));
      if (old) {
        this.run.tx.tick();
        entries.remove(old, rel);
      }
    }
  }
}
