import type { Logger } from 'pino';
import { describeError, type FsError, toFsError } from '../../core/fs-error';
import type { Location } from '../../index/locations';
import type { RemoteDeleteRow, UploadStore } from '../../index/upload-store';
import type { ProviderPool } from './replicas';

const MAX_BACKOFF_MS = 60_000;

/**
 * Deletes owed at a source: an upload that landed at a name its file had already left. Owed in
 * SQLite first (UploadStore.addRemoteDelete), then tried; a failure (the source unreachable)
 * is logged and retried with backoff, across restarts. Only the uploaded version is deleted:
 * when something else is at that name by then, it is left alone. Never throws.
 */
export class RemoteDeletes {
  private readonly retryAt = new Map<number, number>();

  constructor(
    private readonly store: UploadStore,
    private readonly locationOf: (id: number) => Location | undefined,
    private readonly providers: ProviderPool,
    private readonly log: Logger | undefined,
  ) {}

  /** Records that `version` at `path` must go, and tries once now. */
  async owe(loc: Location, path: string, version: string): Promise<void> {
    const now = Date.now();
    const id = this.store.addRemoteDelete(loc.id, path, version, now);
    await this.attempt({ id, location_id: loc.id, path, version, attempts: 0, last_error: null, created_at: now });
  }

  /** Tries every delete that is due; returns when the next one is due (Infinity: none left). */
  async runDue(stopped: () => boolean): Promise<number> {
    let next = Infinity;
    for (const row of this.store.remoteDeletes()) {
      if (stopped()) break;
      const at = this.retryAt.get(row.id) ?? 0;
      if (at > Date.now()) next = Math.min(next, at);
      else if (!(await this.attempt(row))) next = Math.min(next, this.retryAt.get(row.id) ?? Date.now());
    }
    return next;
  }

  /** One try: true when the delete is settled (done, or nothing of ours is left there). */
  private async attempt(row: RemoteDeleteRow): Promise<boolean> {
    const loc = this.locationOf(row.location_id);
    if (!loc) {
      this.store.remoteDeleteDone(row.id); // the location was removed, and its objects are not ours to touch
      return true;
    }
    try {
      const provider = this.providers.get(loc);
      const there = await provider.stat(row.path).catch((err: FsError) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (there?.version === row.version) {
        await provider.remove(row.path).catch((err: FsError) => {
          if (err.code !== 'ENOENT') throw err;
        });
        this.log?.info({ location: loc.name, path: row.path }, 'removed an upload that landed after its file was deleted or renamed');
      } else if (there) {
        this.log?.info({ location: loc.name, path: row.path }, 'a leftover upload was replaced at the source meanwhile: left alone');
      }
      this.store.remoteDeleteDone(row.id);
      this.retryAt.delete(row.id);
      return true;
    } catch (err) {
      const fe = toFsError(err, `delete ${loc.name}/${row.path}`);
      const attempts = row.attempts + 1;
      this.store.recordDeleteAttempt(row.id, attempts, describeError(fe));
      const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempts, 10)) * (0.5 + Math.random() / 2);
      this.retryAt.set(row.id, Date.now() + wait);
      this.log?.warn(
        { location: loc.name, path: row.path, code: fe.code, attempts },
        `a leftover upload could not be deleted at the source, retrying in ${Math.round(wait / 1000)} s: ${fe.message}`,
      );
      return false;
    }
  }
}
