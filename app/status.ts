import type { Home } from './home';
import { copiesReport, type CopiesReport } from './copies';
import { daemonMemory, memoryBudget, processMemory, type MemoryBudget } from './memory';
import { StatusCounts } from '../index/status-counts';
import { UploadStore } from '../index/upload-store';
import { daemonSwallowed } from './error-report';

export interface StatusReport {
  home: string;
  node: { id: string; name: string };
  locations: {
    name: string;
    kind: string;
    uri: string;
    online: boolean;
    readonly: boolean;
    files: number;
    dirs: number;
    bytes: number;
    unhashed: number;
    lastScan: string | null;
  }[];
  index: { entries: number; blobs: number; blobBytes: number; changes: number };
  /** `remoteDeletes`: leftover uploads still to delete at their source (docs/vfs.md, staged writes). */
  uploads: { pending: number; failed: number; remoteDeletes: number };
  /**
   * The copies report without paths (vdfs copies --json has them); null when the index holds
   * more than STATUS_COPIES_MAX_FILES files (`copiesSkipped` says how many): the report reads
   * every file's row and its replicas, seconds at a million files, and status must stay quick.
   */
  copies: (Omit<CopiesReport, 'groups'> & { groups: Omit<CopiesReport['groups'][number], 'paths'>[] }) | null;
  /** Files not counted for `copies` (0 when it was counted). */
  copiesSkipped: number;
  /** Configured cache budgets (bytes), this command's own RSS, and the running daemon's. */
  memory: { budget: MemoryBudget; status: { rss: number; peakRss: number } | null; daemon: { pid: number; rss: number; peakRss: number } | null };
  /**
   * Errors the last daemon caught, logged and went on from (a busy index on a timer, a failed
   * re-hash, a peer that went away), counted by what failed; null when no daemon has run.
   */
  errors: { swallowed: Record<string, number> | null; daemonPid: number | null };
}

/** Above this many indexed files `vdfs status` leaves the copies report to `vdfs copies`. */
export const STATUS_COPIES_MAX_FILES = 50_000;

function errorsReport(dir: string): StatusReport['errors'] {
  const d = daemonSwallowed(dir);
  return { swallowed: d?.counts ?? null, daemonPid: d?.pid ?? null };
}

function withoutPaths(r: CopiesReport): StatusReport['copies'] {
  return { ...r, groups: r.groups.map(({ paths: _paths, ...gr }) => gr) };
}

/** What `vdfs status` and the daemon's status page report about a home. Throws SqliteError when the index cannot be read. */
export function statusReport(home: Home): StatusReport {
  const stats = new StatusCounts(home.db);
  const counts = stats.byLocation();
  const entries = [...counts.values()].reduce((n, c) => n + c.entries, 0);
  const files = [...counts.values()].reduce((n, c) => n + c.files, 0);
  const countCopies = files <= STATUS_COPIES_MAX_FILES;
  const blobs = home.blobs.stats();
  return {
    home: home.dir,
    node: { id: home.nodeId, name: home.config.name },
    locations: home.locations.list().map((l) => {
      const c = counts.get(l.id);
      return {
        name: l.name,
        kind: l.kind,
        uri: l.uri,
        online: l.online,
        readonly: l.readonly,
        files: c?.files ?? 0,
        dirs: c?.dirs ?? 0,
        bytes: c?.bytes ?? 0,
        unhashed: c?.unhashed ?? 0,
        lastScan: l.lastScan ? new Date(l.lastScan).toISOString() : null,
      };
    }),
    index: { entries, blobs: blobs.blobs, blobBytes: blobs.bytes, changes: stats.changeSeq() },
    uploads: { ...stats.uploads(), remoteDeletes: new UploadStore(home.db).remoteDeleteCount() },
    copies: countCopies ? withoutPaths(copiesReport(home, { paths: false })) : null,
    copiesSkipped: countCopies ? 0 : files,
    memory: { budget: memoryBudget(home.config), status: processMemory(process.pid), daemon: daemonMemory(home.dir) },
    errors: errorsReport(home.dir),
  };
}
