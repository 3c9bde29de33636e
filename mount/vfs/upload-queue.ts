import { promises as fsp } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { Logger } from 'pino';
import { FsError, toFsError } from '../../core/fs-error';
import type { EntryFields } from '../../index/entries';
import type { HashPool } from '../../index/hash-pool';
import type { Location } from '../../index/locations';
import type { ProviderEntry } from '../../core/provider';
import type { Home } from '../../app/home';
import type { ProviderPool } from './replicas';

export interface UploadRow {
  id: number;
  location_id: number;
  path: string;
  staging_file: string;
  /** The source's version the change was based on; null: the file did not exist there. */
  base_version: string | null;
  state: 'pending' | 'failed';
  attempts: number;
  last_error: string | null;
  created_at: number;
}

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

  constructor(
    private readonly home: Home,
    private readonly providers: ProviderPool,
    private readonly pool: HashPool,
    private readonly log: Logger | undefined,
    /** Staging files still open for writing are not uploaded yet. */
    private readonly busy: (stagingFile: string) => boolean,
    private readonly changed: () => void,
  ) {}

  pending(locationId: number, rel: string): UploadRow | undefined {
    return this.home.db.prepare("SELECT * FROM uploads WHERE location_id = ? AND path = ? AND state = 'pending' ORDER BY id DESC LIMIT 1").get(locationId, rel) as UploadRow | undefined;
  }

  /** Does a queued upload still need this staging file? */
  references(stagingFile: string): boolean {
    return !!this.home.db.prepare('SELECT 1 FROM uploads WHERE staging_file = ?').get(stagingFile);
  }

  /** Records a staged file as acknowledged (call inside the transaction that updates its entry). */
  enqueue(locationId: number, rel: string, stagingFile: string, baseVersion: string | null): { id: number; replaced?: string } {
    const prev = this.pending(locationId, rel);
    if (prev) {
      this.home.db.prepare('UPDATE uploads SET staging_file = ?, attempts = 0, last_error = NULL, created_at = ? WHERE id = ?').run(stagingFile, Date.now(), prev.id);
      return { id: prev.id, replaced: prev.staging_file !== stagingFile ? prev.staging_file : undefined };
    }
    const info = this.home.db
      .prepare('INSERT INTO uploads (location_id, path, staging_file, base_version, state, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(locationId, rel, stagingFile, baseVersion, 'pending', Date.now());
    return { id: Number(info.lastInsertRowid) };
  }

  /**
   * Waits for an upload of `rel` (or of anything under it) that is running right now, so a
   * delete or rename that follows sees the uploaded file instead of racing with it.
   */
  async settle(locationId: number, rel: string): Promise<void> {
    const f = this.inflight;
    if (f && f.locationId === locationId && (f.path === rel || f.path.startsWith(`${rel}/`))) await f.done.catch(() => undefined);
  }

  private rowsAt(locationId: number, rel: string): UploadRow[] {
    return this.home.db
      .prepare('SELECT * FROM uploads WHERE location_id = ? AND (path = ? OR path LIKE ? ESCAPE \'\\\')')
      .all(locationId, rel, `${rel.replace(/[\\%_]/g, (c) => `\\${c}`)}/%`) as UploadRow[];
  }

  /** Are staged files waiting under directory `rel`? */
  hasUnder(locationId: number, rel: string): boolean {
    return this.rowsAt(locationId, rel).some((r) => r.path !== rel);
  }

  /** The file was deleted: its pending uploads are dropped with their staging files (unless still open). */
  async cancel(locationId: number, rel: string): Promise<void> {
    for (const r of this.rowsAt(locationId, rel)) {
      this.home.db.prepare('DELETE FROM uploads WHERE id = ?').run(r.id);
      if (!this.busy(r.staging_file)) await fsp.rm(r.staging_file, { force: true });
    }
  }

  /** A file or directory was renamed: its pending uploads follow it. */
  move(locationId: number, from: string, to: string, newBase: (rel: string) => string | null | undefined): void {
    const rows = this.home.db.prepare('SELECT * FROM uploads WHERE location_id = ?').all(locationId) as UploadRow[];
    for (const r of rows) {
      const np = r.path === from ? to : r.path.startsWith(`${from}/`) ? to + r.path.slice(from.length) : undefined;
      if (np === undefined) continue;
      const base = newBase(np);
      this.home.db.prepare('UPDATE uploads SET path = ?, base_version = ? WHERE id = ?').run(np, base === undefined ? r.base_version : base, r.id);
    }
  }

  counts(): { pending: number; failed: number } {
    return this.home.db.prepare("SELECT sum(state = 'pending') AS pending, sum(state = 'failed') AS failed FROM uploads").get() as { pending: number; failed: number };
  }

  /**
   * After a crash: staging files no row refers to were never acknowledged (the writer got no
   * answer) and are removed; rows whose staging file is gone are marked failed and reported.
   */
  async recover(): Promise<void> {
    const rows = this.home.db.prepare('SELECT * FROM uploads').all() as UploadRow[];
    const known = new Set(rows.map((r) => r.staging_file));
    for (const f of await fsp.readdir(this.home.stagingDir).catch(() => [] as string[])) {
      const file = join(this.home.stagingDir, f);
      if (!known.has(file) && !this.busy(file)) {
        await fsp.rm(file, { force: true });
        this.log?.warn({ file }, 'removed a staged write that was never acknowledged');
      }
    }
    for (const r of rows) {
      if (r.state === 'pending' && !(await fsp.stat(r.staging_file).then(() => true, () => false))) {
        this.home.db.prepare("UPDATE uploads SET state = 'failed', last_error = ? WHERE id = ?").run('staging file missing', r.id);
        this.log?.error({ path: r.path }, 'a queued upload lost its staged file');
      }
    }
  }

  start(): void {
    void this.recover().catch((err) => this.log?.error({ err }, 'upload recovery failed')).then(() => this.kick());
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
      const rows = (this.home.db.prepare("SELECT * FROM uploads WHERE state = 'pending' ORDER BY id").all() as UploadRow[]).filter(
        (r) => !this.busy(r.staging_file),
      );
      // A file is uploaded once it has been quiet for `upload.delay` (editors and build tools
      // rewrite files several times in a row; each version need not travel).
      const delay = this.home.config['upload.delay'] * 1000;
      const dueAt = (r: UploadRow) => Math.max(this.retryAt.get(r.id) ?? 0, r.created_at + delay);
      const ready = rows.filter((r) => dueAt(r) <= now);
      for (const r of rows) if (!ready.includes(r)) nextRetry = Math.min(nextRetry, dueAt(r));
      if (ready.length === 0) break;
      for (const r of ready) {
        if (this.stopped) return;
        const done = this.uploadOne(r);
        this.inflight = { locationId: r.location_id, path: r.path, done };
        await done;
        this.inflight = undefined;
      }
    }
    if (nextRetry !== Infinity) this.kick(Math.max(50, nextRetry - Date.now()));
  }

  private async uploadOne(r: UploadRow): Promise<void> {
    const loc = this.home.locations.byId(r.location_id);
    if (!loc) { this.home.db.prepare('DELETE FROM uploads WHERE id = ?').run(r.id); return; }
    try {
      const h = await this.pool.hashFile(r.staging_file, this.home.config.blockSize);
      const provider = this.providers.get(loc);
      let placed: ProviderEntry;
      let rel = r.path;
      let conflict = false;
      try {
        placed = await provider.putFile(r.path, r.staging_file, { ifVersion: r.base_version });
      } catch (err) {
        if ((err as FsError).code !== 'ESTALE') throw err;
        ({ placed, rel } = await this.keepAsConflict(loc, r));
        conflict = true;
      }
      const row = this.home.db.prepare('SELECT staging_file, path FROM uploads WHERE id = ?').get(r.id) as { staging_file: string; path: string } | undefined;
      if (!conflict && (!row || row.path !== r.path)) {
        // Deleted or renamed while it was being uploaded: that change came later and wins.
        await provider.remove(r.path).catch(() => undefined);
        if (row) this.home.db.prepare('UPDATE uploads SET base_version = NULL WHERE id = ?').run(r.id);
        await fsp.rm(r.staging_file, { force: true }).catch(() => undefined);
        return;
      }
      this.home.db.transaction(() => {
        const still = this.home.db.prepare('SELECT staging_file FROM uploads WHERE id = ?').get(r.id) as { staging_file: string } | undefined;
        this.home.blobs.put({ hash: h.hash, size: h.size, blockSize: this.home.config.blockSize, blockHashes: h.blockHashes });
        // When a newer close replaced the staged bytes meanwhile, the entry keeps describing those.
        if (conflict || still?.staging_file === r.staging_file) this.setEntry(loc, rel, fieldsOfProvider(placed, placed.size === h.size ? h.hash : null));
        // A newer close replaced the staged file while we uploaded: keep its row for the next round.
        if (still?.staging_file === r.staging_file) this.home.db.prepare('DELETE FROM uploads WHERE id = ?').run(r.id);
        else if (still) this.home.db.prepare('UPDATE uploads SET base_version = ? WHERE id = ?').run(rel === r.path ? placed.version : r.base_version, r.id);
      }).immediate();
      this.changed(); // before any await: an open now must see the uploaded version, not the staged one
      this.retryAt.delete(r.id);
      await fsp.rm(r.staging_file, { force: true }).catch(() => undefined);
      this.log?.info({ location: loc.name, path: rel }, 'uploaded');
    } catch (err) {
      const fe = toFsError(err, `upload ${loc.name}/${r.path}`);
      const attempts = r.attempts + 1;
      this.home.db.prepare('UPDATE uploads SET attempts = ?, last_error = ? WHERE id = ?').run(attempts, fe.message, r.id);
      const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempts, 10)) * (0.5 + Math.random() / 2);
      this.retryAt.set(r.id, Date.now() + wait);
      this.log?.warn({ location: loc.name, path: r.path, code: fe.code, attempts }, `upload failed, retrying in ${Math.round(wait / 1000)} s: ${fe.message}`);
    }
  }

  /** The source changed since the file was opened: upload ours beside it and re-read theirs. */
  private async keepAsConflict(loc: Location, r: UploadRow): Promise<{ placed: ProviderEntry; rel: string }> {
    const provider = this.providers.get(loc);
    for (let n = 1; n < 100; n++) {
      const rel = conflictName(r.path, this.home.config.name, n);
      try {
        const placed = await provider.putFile(rel, r.staging_file, { ifVersion: null });
        this.log?.warn({ location: loc.name, path: r.path, copy: rel }, 'the file changed at the source while it was being edited here: kept our version as a conflict copy');
        const theirs = await provider.stat(r.path).catch(() => undefined);
        this.home.db.transaction(() => {
          if (theirs) this.setEntry(loc, r.path, fieldsOfProvider(theirs, null));
          else {
            const e = this.home.entries.resolve(loc.id, r.path);
            if (e) this.home.entries.remove(e, r.path);
          }
          this.home.db.prepare('DELETE FROM uploads WHERE id = ?').run(r.id);
        }).immediate();
        return { placed, rel };
      } catch (err) {
        if ((err as FsError).code !== 'ESTALE') throw err;
      }
    }
    throw new FsError('EIO', `no free conflict-copy name for ${r.path}`);
  }

  private setEntry(loc: Location, rel: string, fields: EntryFields): void {
    const { entries } = this.home;
    const e = entries.resolve(loc.id, rel);
    if (e) { entries.update(e, fields, rel); return; }
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
