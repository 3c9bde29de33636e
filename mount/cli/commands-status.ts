import { join } from 'node:path';
import { diskUsage } from './commands-cache';
import type { Command } from 'commander';
import { formatSize } from '../../app/config';
import type { Home } from '../../app/home';
import { copiesReport, copiesSummaryLine, type CopiesReport } from '../../app/copies';
import { openHome, type GlobalOpts } from './context';
import { openPins } from './commands-pin';
import { printJson, table } from './output';
import { daemonMemory, memoryBudget, processMemory, type MemoryBudget } from '../../app/memory';
import { daemonSwallowed } from '../../app/error-report';
import { UploadStore } from '../../index/upload-store';

export interface StatusReport {
  home: string;
  node: { id: string; name: string };
  locations: { name: string; kind: string; uri: string; online: boolean; readonly: boolean; files: number; dirs: number; bytes: number; unhashed: number; lastScan: string | null }[];
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

function withoutPaths(r: CopiesReport): StatusReport['copies'] {
  return { ...r, groups: r.groups.map(({ paths: _paths, ...gr }) => gr) };
}

function errorsReport(dir: string): StatusReport['errors'] {
  const d = daemonSwallowed(dir);
  return { swallowed: d?.counts ?? null, daemonPid: d?.pid ?? null };
}

export function statusReport(home: Home): StatusReport {
  // Counters kept by triggers (index/migrations.ts): one row per location, whatever the index size.
  const counts = new Map(
    (home.db
      .prepare('SELECT location_id AS id, entries, files, dirs, bytes, unhashed FROM location_stats')
      .all() as { id: number; entries: number; files: number; dirs: number; bytes: number; unhashed: number }[]).map((r) => [r.id, r]),
  );
  const entries = [...counts.values()].reduce((n, c) => n + c.entries, 0);
  const q = (sql: string) => (home.db.prepare(sql).get() as { n: number }).n;
  const blobs = home.blobs.stats();
  return {
    home: home.dir,
    node: { id: home.nodeId, name: home.config.name },
    locations: home.locations.list().map((l) => {
      const c = counts.get(l.id);
      return {
        name: l.name, kind: l.kind, uri: l.uri, online: l.online, readonly: l.readonly,
        files: c?.files ?? 0, dirs: c?.dirs ?? 0, bytes: c?.bytes ?? 0, unhashed: c?.unhashed ?? 0,
        lastScan: l.lastScan ? new Date(l.lastScan).toISOString() : null,
      };
    }),
    index: { entries, blobs: blobs.blobs, blobBytes: blobs.bytes, changes: q('SELECT coalesce(max(seq), 0) AS n FROM changes') },
    uploads: { pending: q("SELECT count(*) AS n FROM uploads WHERE state = 'pending'"), failed: q("SELECT count(*) AS n FROM uploads WHERE state = 'failed'"), remoteDeletes: new UploadStore(home.db).remoteDeleteCount() },
    copies: withoutPaths(copiesReport(home, { paths: false })),
    memory: { budget: memoryBudget(home.config), status: processMemory(process.pid), daemon: daemonMemory(home.dir) },
    errors: errorsReport(home.dir),
  };
}

export function registerStatusCommand(program: Command, g: () => GlobalOpts): void {
  program
    .command('status')
    .description('locations, online state, index counts, queues')
    .option('--json', 'print a JSON document')
    .action(async (o: { json?: boolean }) => {
      const home = openHome(g());
      // Measured on disk: a running daemon owns the cache and its counters.
      const cache = { dir: home.cacheDir, maxBytes: home.config['cache.maxSize'], ...(await diskUsage(join(home.cacheDir, 'blocks'))) };
      const p = openPins(home);
      const pr = p.pins.report();
      await p.close();
      const pins = { pins: pr.pins.length, bytes: pr.bytes, fetchedBytes: pr.fetchedBytes, maxBytes: pr.maxBytes };
      const r = { ...statusReport(home), cache, pins };
      if (o.json) return printJson(r);
      process.stdout.write(`node ${r.node.name} (${r.node.id.slice(0, 16)}), home ${r.home}\n\n`);
      process.stdout.write(
        table([
          ['LOCATION', 'KIND', 'STATE', 'FILES', 'SIZE', 'UNHASHED', 'LAST SCAN'],
          ...r.locations.map((l) => [l.name, l.kind, l.online ? 'online' : 'OFFLINE', String(l.files), formatSize(l.bytes), String(l.unhashed), l.lastScan ?? 'never']),
        ]),
      );
      process.stdout.write(`\nindex: ${r.index.entries} entries, ${r.index.blobs} blobs (${formatSize(r.index.blobBytes)}), change log at ${r.index.changes}\n`);
      process.stdout.write(`uploads: ${r.uploads.pending} pending, ${r.uploads.failed} failed\n`);
      process.stdout.write(copiesSummaryLine({ ...r.copies, groups: [] }, formatSize) + '\n');
      const mem = r.memory;
      process.stdout.write(
        `memory: caches at most ${formatSize(mem.budget.total)} (index ${formatSize(mem.budget.indexCache)} + mmap ${formatSize(mem.budget.indexMmap)}, paths ${formatSize(mem.budget.resolverCache)}, blocks ${formatSize(mem.budget.blockMemory)}); ` +
          (mem.daemon ? `daemon ${mem.daemon.pid} ${formatSize(mem.daemon.rss)} resident (peak ${formatSize(mem.daemon.peakRss)})` : 'no daemon running') +
          (mem.status ? `; this command ${formatSize(mem.status.rss)}` : '') + '\n',
      );
      process.stdout.write(`cache: ${formatSize(cache.bytes)} in ${cache.blocks} blocks of at most ${formatSize(cache.maxBytes)} (${cache.dir})\n`);
      process.stdout.write(`pins: ${pins.pins}, ${formatSize(pins.fetchedBytes)} of ${formatSize(pins.bytes)} on this device, limit ${formatSize(pins.maxBytes)} (vdfs pin --list)\n`);
    });
}
