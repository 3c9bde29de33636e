import type { Db } from './db';

/** One staged file waiting to be uploaded (table `uploads`). */
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

/**
 * An object to delete at the source (table `remote_deletes`): an upload that landed at a name
 * the file had already left (deleted or renamed meanwhile). Only that `version` is deleted,
 * so a newer object written there by anyone is never removed.
 */
export interface RemoteDeleteRow {
  id: number;
  location_id: number;
  path: string;
  version: string;
  attempts: number;
  last_error: string | null;
  created_at: number;
}

/**
 * The upload queue's persistent state: staged uploads and the remote deletes still owed.
 * Everything is in SQLite so it survives restarts; the caller wraps multi-step changes in a
 * transaction. Statements are prepared once. Methods throw only SQLite errors.
 */
export class UploadStore {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      pending: db.prepare("SELECT * FROM uploads WHERE location_id = ? AND path = ? AND state = 'pending' ORDER BY id DESC LIMIT 1"),
      references: db.prepare('SELECT 1 FROM uploads WHERE staging_file = ?'),
      current: db.prepare('SELECT staging_file, path FROM uploads WHERE id = ?'),
      restage: db.prepare('UPDATE uploads SET staging_file = ?, attempts = 0, last_error = NULL, created_at = ? WHERE id = ?'),
      insert: db.prepare('INSERT INTO uploads (location_id, path, staging_file, base_version, state, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      at: db.prepare("SELECT * FROM uploads WHERE location_id = ? AND (path = ? OR path LIKE ? ESCAPE '\\')"),
      remove: db.prepare('DELETE FROM uploads WHERE id = ?'),
      ofLocation: db.prepare('SELECT * FROM uploads WHERE location_id = ?'),
      move: db.prepare('UPDATE uploads SET path = ?, base_version = ? WHERE id = ?'),
      counts: db.prepare("SELECT coalesce(sum(state = 'pending'), 0) AS pending, coalesce(sum(state = 'failed'), 0) AS failed FROM uploads"),
      all: db.prepare('SELECT * FROM uploads'),
      fail: db.prepare("UPDATE uploads SET state = 'failed', last_error = ? WHERE id = ?"),
      due: db.prepare("SELECT * FROM uploads WHERE state = 'pending' ORDER BY id"),
      attempt: db.prepare('UPDATE uploads SET attempts = ?, last_error = ? WHERE id = ?'),
      base: db.prepare('UPDATE uploads SET base_version = ? WHERE id = ?'),
      addDelete: db.prepare('INSERT INTO remote_deletes (location_id, path, version, created_at) VALUES (?, ?, ?, ?)'),
      deletes: db.prepare('SELECT * FROM remote_deletes ORDER BY id'),
      deleteAt: db.prepare('SELECT * FROM remote_deletes WHERE location_id = ? AND path = ? ORDER BY id DESC LIMIT 1'),
      deleteDone: db.prepare('DELETE FROM remote_deletes WHERE id = ?'),
      deleteAttempt: db.prepare('UPDATE remote_deletes SET attempts = ?, last_error = ? WHERE id = ?'),
      deleteCount: db.prepare('SELECT count(*) AS n FROM remote_deletes'),
    };
  }

  /** The newest pending upload of one path. */
  pending(locationId: number, rel: string): UploadRow | undefined {
    return this.s.pending.get(locationId, rel) as UploadRow | undefined;
  }

  /** Does any upload (pending or failed) still refer to this staging file? */
  references(stagingFile: string): boolean {
    return !!this.s.references.get(stagingFile);
  }

  /** Where an upload stands now (it may have been renamed, restaged or removed meanwhile). */
  current(id: number): { staging_file: string; path: string } | undefined {
    return this.s.current.get(id) as { staging_file: string; path: string } | undefined;
  }

  /** A newer close replaced the staged bytes of a pending upload. */
  restage(id: number, stagingFile: string, now: number): void {
    this.s.restage.run(stagingFile, now, id);
  }

  insert(locationId: number, rel: string, stagingFile: string, baseVersion: string | null, now: number): number {
    return Number(this.s.insert.run(locationId, rel, stagingFile, baseVersion, 'pending', now).lastInsertRowid);
  }

  /** Uploads of `rel` and of everything under it. */
  at(locationId: number, rel: string): UploadRow[] {
    return this.s.at.all(locationId, rel, `${rel.replace(/[\\%_]/g, (c) => `\\${c}`)}/%`) as UploadRow[];
  }

  remove(id: number): void {
    this.s.remove.run(id);
  }

  ofLocation(locationId: number): UploadRow[] {
    return this.s.ofLocation.all(locationId) as UploadRow[];
  }

  /** The upload follows a rename, with the version now at its new name as base. */
  move(id: number, path: string, baseVersion: string | null): void {
    this.s.move.run(path, baseVersion, id);
  }

  counts(): { pending: number; failed: number } {
    return this.s.counts.get() as { pending: number; failed: number };
  }

  all(): UploadRow[] {
    return this.s.all.all() as UploadRow[];
  }

  /** Given up on (its staged file is gone): kept for `vdfs status`, never retried. */
  markFailed(id: number, error: string): void {
    this.s.fail.run(error, id);
  }

  /** Pending uploads, oldest first. */
  due(): UploadRow[] {
    return this.s.due.all() as UploadRow[];
  }

  recordAttempt(id: number, attempts: number, error: string): void {
    this.s.attempt.run(attempts, error, id);
  }

  setBase(id: number, baseVersion: string | null): void {
    this.s.base.run(baseVersion, id);
  }

  /** Owes the deletion of `version` at `path`; returns its id. */
  addRemoteDelete(locationId: number, path: string, version: string, now: number): number {
    return Number(this.s.addDelete.run(locationId, path, version, now).lastInsertRowid);
  }

  remoteDeletes(): RemoteDeleteRow[] {
    return this.s.deletes.all() as RemoteDeleteRow[];
  }

  /** The newest delete owed at one path. */
  remoteDeleteAt(locationId: number, path: string): RemoteDeleteRow | undefined {
    return this.s.deleteAt.get(locationId, path) as RemoteDeleteRow | undefined;
  }

  remoteDeleteDone(id: number): void {
    this.s.deleteDone.run(id);
  }

  recordDeleteAttempt(id: number, attempts: number, error: string): void {
    this.s.deleteAttempt.run(attempts, error, id);
  }

  remoteDeleteCount(): number {
    return (this.s.deleteCount.get() as { n: number }).n;
  }
}
