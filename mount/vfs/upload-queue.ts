import { promises as fsp, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { Logger } from 'pino';
import { describeError, FsError, toFsError } from '../../core/fs-error';
import { noteSwallowed } from '../../core/swallowed';
import type { EntryFields } from '../../index/entries';
import type { HashPool } from '../../index/hash-pool';
import type { Location } from '../../index/locations';
import type { ProviderEntry, PutOptions } from '../../core/provider';
import type { VfsHome as Home } from './vfs-home';
import type { ProviderPool } from './replicas';
import { UploadStore, type UploadRow } from '../../index/upload-store';
import { RemoteDeletes } from './remote-deletes';
import { isWritableRemote } from './targets';

export type { UploadRow } from '../../index/upload-store';

const MAX_BACKOFF_MS = 60_000;

/** `name (conflict 2026-11-25 node).ext` next to the original. */
export function conflictName(rel: string, node: string, n: number, now = new Date()): string {
  const dir = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/') + 1) : '';
  const base = basename(rel);
  const ext = extname(base);
  const stem = ext && ext !== base ? base.slice(0, -ext.length) : base;
  const tag = `conflict ${now.toISOString().slice(0, 10)} ${node}${n > 1 ? ` ${n}` : ''}`;
  return `${dir}${stem} (${tag})${ext && ext !== base ? ext : ''}`;
}

export function fieldsOfProvider(p: ProviderEntry, hash: string | null): EntryFields {
  return { type: p.type, size: p.size, mtimeSec: p.mtimeSec, mtimeNsec: p.mtimeNsec, mode: p.mode || 0o644, version: p.version, hash, target: p.target ?? null };
}

/**
 * Uploads staged files after close, from a queue kept in SQLite so it survives restarts.
 * Each upload carries the version the change was based on; when the source moved on
 * meanwhile (ESTALE) the staged content is kept as a conflict copy beside it and nothing
 * is overwritten. Failures are retried with backoff; nothing acknowledged is dropped.
 */
export class UploadQueue {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private readonly retryAt = new Map<number, number>();
  private inflight?: { locationId: number; path: string; done: Promise<void> };
  /** Paths a rename, delete or open is working on: no upload of them (or under them) starts meanwhile. */
  private readonly holds = new Map<string, number>();
  private readonly store: UploadStore;
  private readonly deletes: RemoteDeletes;

  constructor(
    private readonly home: Home,
    private readonly providers: ProviderPool,
    private readonly pool: HashPool,
    private readonly log: Logger | undefined,
    /** Staging files still open for writing are not uploaded yet. */
    private readonly busy: (stagingFile: string) => boolean,
    /**
     * An entry the upload changed. `notify` false: only its version moved (the bytes, size,
     * mode and time are the staged file's, which whoever wrote it already sees), so no kernel
     * cache needs to hear of it.
     */
    private readonly changed: (loc: Location, rel: string, notify: boolean) => void,
  ) {
    this.store = new UploadStore(home.db);
    this.deletes = new RemoteDeletes(this.store, (id) => home.locations.byId(id), providers, log);
  }

  pending(locationId: number, rel: string): UploadRow | undefined {
    return this.store.pending(locationId, rel);
  }

  /** Does a queued upload still need this staging file? */
  references(stagingFile: string): boolean {
    return this.store.references(stagingFile);
  }

  /** Records a staged file as acknowledged (call inside the transaction that updates its entry). */
  enqueue(locationId: number, rel: string, stagingFile: string, baseVersion: string | null): { id: number; replaced?: string } {
    const prev = this.pending(locationId, rel);
    if (prev) {
      this.store.restage(prev.id, stagingFile, Date.now());
      return { id: prev.id, replaced: prev.staging_file !== stagingFile ? prev.staging_file : undefined };
    }
    // A new file where a leftover upload of ours is still owed a delete: replace that object
    // instead of meeting it as somebody else's (which would make a conflict copy).
    const owed = baseVersion === null ? this.store.remoteDeleteAt(locationId, rel) : undefined;
    if (owed) this.store.remoteDeleteDone(owed.id);
    return { id: this.store.insert(locationId, rel, stagingFile, owed ? owed.version : baseVersion, Date.now()) };
  }

  /**
   * Waits for an upload of `rel` (or of anything under it) that is running right now, so a
   * delete or rename that follows sees the uploaded file instead of racing with it.
   */
  async settle(locationId: number, rel: string): Promise<void> {
    const f = this.inflight;
    // The upload's own failure is logged and retried by uploadOne; here only its end matters.
    if (f && f.locationId === locationId && (f.path === rel || f.path.startsWith(`${rel}/`))) await f.done.catch(() => undefined);
  }

  /**
   * Keeps uploads of `rel` (and of anything under it) from starting until the returned release
   * is called, and waits for one running now. A rename or delete holds its paths from before it
   * looks at the source until its queue rows and entries are updated: an upload starting in
   * between would land at the old name after the writer decided the file was only staged.
   * Never throws; the release is idempotent and runs the queue again.
   */
  async hold(locationId: number, rel: string): Promise<() => void> {
    const key = `${locationId}\0${rel}`;
    this.holds.set(key, (this.holds.get(key) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (this.holds.get(key) ?? 1) - 1;
      if (n > 0) this.holds.set(key, n);
      else this.holds.delete(key);
      this.kick();
    };
    await this.settle(locationId, rel);
    return release;
  }

  /** Is an upload of this row held back by a rename, delete or open of it or of a directory above it? */
  private held(r: { location_id: number; path: string }): boolean {
    for (const key of this.holds.keys()) {
      const sep = key.indexOf('\0');
      if (Number(key.slice(0, sep)) !== r.location_id) continue;
      const rel = key.slice(sep + 1);
      if (rel === '' || r.path === rel || r.path.startsWith(`${rel}/`)) return true;
    }
    return false;
  }

  /** Are staged files waiting under directory `rel`? */
  hasUnder(locationId: number, rel: string): boolean {
    return this.store.at(locationId, rel).some((r) => r.path !== rel);
  }

  /** The file was deleted: its pending uploads are dropped with their staging files (unless still open). */
  async cancel(locationId: number, rel: string): Promise<void> {
    for (const r of this.store.at(locationId, rel)) {
      this.store.remove(r.id);
      if (!this.busy(r.staging_file)) await fsp.rm(r.staging_file, { force: true });
    }
  }

  /** A file or directory was renamed: its pending uploads follow it. */
  move(locationId: number, from: string, to: string, newBase: (rel: string) => string | null | undefined): void {
    for (const r of this.store.ofLocation(locationId)) {
      const np = r.path === from ? to : r.path.startsWith(`${from}/`) ? to + r.path.slice(from.length) : undefined;
      if (np === undefined) continue;
      const base = newBase(np);
      this.store.move(r.id, np, base === undefined ? r.base_version : base);
    }
  }

  counts(): { pending: number; failed: number; remoteDeletes: number } {
    return { ...this.store.counts(), remoteDeletes: this.store.remoteDeleteCount() };
  }

  /**
   * After a crash: staging files no row refers to were never acknowledged (the writer got no
   * answer) and are removed; rows whose staging file is gone are marked failed and reported.
   */
  async recover(): Promise<void> {
    const rows = this.store.all();
    const known = new Set(rows.map((r) => r.staging_file));
    for (const f of await fsp.readdir(this.home.stagingDir).catch(() => [] as string[])) {
      const file = join(this.home.stagingDir, f);
      if (!known.has(file) && !this.busy(file)) {
        await fsp.rm(file, { force: true });
        this.log?.warn({ file }, 'removed a staged write that was never acknowledged');
      }
    }
    for (const r of rows) {
      if (
        r.state === 'pending' &&
        !(await fsp.stat(r.staging_file).then(
          () => true,
          () => false,
        ))
      ) {
        this.store.markFailed(r.id, 'staging file missing');
        this.log?.error({ path: r.path }, 'a queued upload lost its staged file');
      }
    }
  }

  start(): void {
    void this.recover()
      .catch((err) => this.log?.error({ err }, 'upload recovery failed'))
      .then(() => this.kick());
  }

  /** Runs the queue soon. */
  kick(delayMs = 0): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running ??= this.drain().finally(() => (this.running = undefined));
    }, delayMs);
  }

  private async drain(): Promise<void> {
    let nextRetry = Infinity;
    for (;;) {
      if (this.stopped) return;
      const now = Date.now();
      // Deletes owed at a source first: a new upload of the same name must not meet the leftover.
      nextRetry = Math.min(nextRetry, await this.deletes.runDue(() => this.stopped));
      const rows = this.store.due().filter((r) => !this.busy(r.staging_file));
      // A file is uploaded once it has been quiet for `upload.delay` (editors and build tools
      // rewrite files several times in a row; each version need not travel).
      const delay = this.home.config['upload.delay'] * 1000;
      const dueAt = (r: UploadRow) => Math.max(this.retryAt.get(r.id) ?? 0, r.created_at + delay);
      const ready = rows.filter((r) => dueAt(r) <= now);
      for (const r of rows) if (!ready.includes(r)) nextRetry = Math.min(nextRetry, dueAt(r));
      if (ready.length === 0) break;
      let started = 0;
      for (const r of ready) {
        if (this.stopped) return;
        // A rename, delete or open of it is under way (its row may be moving), or it was opened
        // for writing since it was listed: the release (or the close) runs the queue again.
        if (this.held(r) || this.busy(r.staging_file)) continue;
        started++;
        const done = this.uploadOne(r);
        this.inflight = { locationId: r.location_id, path: r.path, done };
        await done;
        this.inflight = undefined;
      }
      // Everything ready was held back or changed: a release (or the next close) kicks the queue again.
      if (started === 0) break;
    }
    if (nextRetry !== Infinity) this.kick(Math.max(50, nextRetry - Date.now()));
  }

  private async uploadOne(r: UploadRow): Promise<void> {
    const loc = this.home.locations.byId(r.location_id);
    if (!loc) {
      this.store.remove(r.id);
      return;
    }
    try {
      const h = await this.pool.hashFile(r.staging_file, this.home.config.blockSize);
      const provider = this.providers.get(loc);
      let placed: ProviderEntry;
      let rel = r.path;
      let conflict = false;
      const meta = this.metaToKeep(loc, r.path, r.staging_file);
      try {
        placed = await provider.putFile(r.path, r.staging_file, { ifVersion: r.base_version, meta });
      } catch (err) {
        if ((err as FsError).code !== 'ESTALE') throw err;
        ({ placed, rel } = await this.keepAsConflict(loc, r));
        conflict = true;
      }
      const row = this.store.current(r.id);
      if (!conflict && (!row || row.path !== r.path)) return await this.landedElsewhere(loc, r, placed);
      // A chmod or touch of the staged file while this upload ran went to the index only: the
      // placed file has the old mode or time, so the file goes again (the next round's put carries them).
      const metaMoved = !conflict && meta !== undefined && !sameMeta(meta, this.metaToKeep(loc, rel, r.staging_file));
      const done = this.home.db
        .transaction(() => {
          const still = this.store.current(r.id);
          this.home.blobs.put({ hash: h.hash, size: h.size, blockSize: this.home.config.blockSize, blockHashes: h.blockHashes });
          const same = still?.staging_file === r.staging_file && !metaMoved;
          // When a newer close replaced the staged bytes meanwhile, the entry keeps describing those.
          if (conflict || same) this.setEntry(loc, rel, this.keepIndexMeta(loc, rel, conflict, fieldsOfProvider(placed, placed.size === h.size ? h.hash : null)));
          // A newer close replaced the staged file (or its mode or time moved) while we uploaded: keep its row for the next round.
          if (same) this.store.remove(r.id);
          else if (still) this.store.setBase(r.id, rel === r.path ? placed.version : r.base_version);
          return same || still?.staging_file !== r.staging_file;
        })
        .immediate();
      // Before any await: an open now must see the uploaded version, not the staged one. A
      // conflict put theirs at the name and ours beside it: new bytes and a new name to show.
      this.changed(loc, rel, conflict);
      if (conflict) this.changed(loc, r.path, true);
      this.retryAt.delete(r.id);
      if (done) await this.dropStaged(r.staging_file);
      this.log?.info({ location: loc.name, path: rel }, 'uploaded');
    } catch (err) {
      const fe = toFsError(err, `upload ${loc.name}/${r.path}`);
      const attempts = r.attempts + 1;
      this.store.recordAttempt(r.id, attempts, describeError(fe));
      const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempts, 10)) * (0.5 + Math.random() / 2);
      this.retryAt.set(r.id, Date.now() + wait);
      this.log?.warn({ location: loc.name, path: r.path, code: fe.code, attempts }, `upload failed, retrying in ${Math.round(wait / 1000)} s: ${fe.message}`);
    }
  }

  /**
   * The file was deleted or renamed while it was uploading: that change came later and wins.
   * What landed at the old name is owed a delete (persisted, retried while the source is
   * unreachable); a renamed file keeps its row and staged bytes for the next round, at its
   * new name, with the base the rename gave it: the version of the file it replaced there, if
   * any. (It was set to "nothing" here: renamed over an uploaded file, ours then went beside it
   * as a conflict copy, and the index lost the file's hash.)
   */
  private async landedElsewhere(loc: Location, r: UploadRow, placed: ProviderEntry): Promise<void> {
    this.retryAt.delete(r.id);
    await this.deletes.owe(loc, r.path, placed.version);
    if (!this.store.references(r.staging_file) && !this.busy(r.staging_file)) await this.dropStaged(r.staging_file);
  }

  /** Removes a staging file nothing needs any more (a leftover is also removed by the next start's recover()). */
  private async dropStaged(file: string): Promise<void> {
    await fsp.rm(file, { force: true }).catch((err) => noteSwallowed(this.log, 'upload queue: removing a staging file', err, { file }));
  }

  /**
   * The source changed since the file was opened: upload ours beside it and re-read theirs.
   * Theirs is read first: only ENOENT means it was deleted; any other failure (the source
   * unreachable) throws before anything is placed, and the whole upload is retried later.
   */
  private async keepAsConflict(loc: Location, r: UploadRow): Promise<{ placed: ProviderEntry; rel: string }> {
    const provider = this.providers.get(loc);
    const theirs = await provider.stat(r.path).catch((err: FsError) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    for (let n = 1; n < 100; n++) {
      const rel = conflictName(r.path, this.home.config.name, n);
      try {
        const placed = await provider.putFile(rel, r.staging_file, { ifVersion: null });
        this.log?.warn({ location: loc.name, path: r.path, copy: rel }, 'the file changed at the source while it was being edited here: kept our version as a conflict copy');
        this.home.db
          .transaction(() => {
            if (theirs) this.setEntry(loc, r.path, fieldsOfProvider(theirs, null));
            else {
              const e = this.home.entries.resolve(loc.id, r.path);
              if (e) this.home.entries.remove(e, r.path);
            }
            this.store.remove(r.id);
          })
          .immediate();
        return { placed, rel };
      } catch (err) {
        if ((err as FsError).code !== 'ESTALE') throw err;
      }
    }
    throw new FsError('EIO', `no free conflict-copy name for ${r.path}`);
  }

  /**
   * A cloud source keeps no mode and no chosen mtime: those live in the index (set at close, by
   * chmod or touch since, even while this upload ran). The uploaded object's own time and mode
   * must not take them back (a `touch` right after a write was lost). Write-back disks keep
   * what the disk says; a conflict copy is a new entry.
   */
  private keepIndexMeta(loc: Location, rel: string, conflict: boolean, fields: EntryFields): EntryFields {
    if (conflict || !isWritableRemote(this.providers.get(loc).features)) return fields;
    const cur = this.home.entries.resolve(loc.id, rel);
    return cur?.type === 'file' ? { ...fields, mtimeSec: cur.mtimeSec, mtimeNsec: cur.mtimeNsec, mode: cur.mode || fields.mode } : fields;
  }

  /**
   * What a write-back folder's placed file gets: the mode and mtime the index holds for the
   * staged file (set at close, by chmod or touch since: cp -p, rsync -a and tar set them after
   * the last write, while only the staged copy exists), and the owner its staging file carries
   * (StagedOwners). A cloud source ignores it.
   */
  private metaToKeep(loc: Location, rel: string, stagingFile: string): PutOptions['meta'] {
    if (!this.providers.get(loc).features.localFiles) return undefined;
    const e = this.home.entries.resolve(loc.id, rel);
    if (e?.type !== 'file') return undefined;
    // Synchronous: a chown between this look and the commit that drops the staging file would be lost.
    return { mode: e.mode, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, ...givenOwner(stagingFile) };
  }

  private setEntry(loc: Location, rel: string, fields: EntryFields): void {
    const { entries } = this.home;
    const e = entries.resolve(loc.id, rel);
    if (e) {
      entries.update(e, fields, rel);
      return;
    }
    const parentRel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    const parent = entries.resolve(loc.id, parentRel);
    if (parent?.type === 'dir') entries.insert(loc.id, parent.id, rel.slice(rel.lastIndexOf('/') + 1), fields, rel);
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }
}

function sameMeta(a: NonNullable<PutOptions['meta']>, b: PutOptions['meta']): boolean {
  return b !== undefined && a.mode === b.mode && a.mtimeSec === b.mtimeSec && a.mtimeNsec === b.mtimeNsec && a.uid === b.uid && a.gid === b.gid;
}

/** The owner a staging file carries when it is not the daemon's (then there is nothing to give). */
function givenOwner(file: string): { uid: number; gid: number } | undefined {
  try {
    const st = statSync(file);
    return st.uid === process.getuid?.() && st.gid === process.getgid?.() ? undefined : { uid: st.uid, gid: st.gid };
  } catch {
    return undefined;
  }
}
