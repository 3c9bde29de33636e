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
  /** The copies report without paths (vdfs copies --json has them). */
  copies: Omit<CopiesReport, 'groups'> & { groups: Omit<CopiesReport['groups'][number], 'paths'>[] };
  /** Configured cache budgets (bytes), this command's own RSS, and the running daemon's. */
  memory: { budget: MemoryBudget; status: { rss: number; peakRss: number } | null; daemon: { pid: number; rss: number; peakRss: number } | null };
  /**
   * Errors the last daemon caught, logged and went on from (a busy index on a timer, a failed
   * re-hash, a peer that went away), counted by what failed; null when no daemon has run.
   */
  errors: { swallowed: Record<string, number> | null; daemonPid: number | null };
}

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
    copies: withoutPaths(copiesReport(home, { paths: false })),
    memory: { budget: memoryBudget(home.config), status: processMemory(process.pid), daemon: daemonMemory(home.dir) },
    errors: errorsReport(home.dir),
  };
}
