import { join } from 'node:path';
import { diskUsage } from './commands-cache';
import type { Command } from 'commander';
import { formatSize } from '../../app/config';
import { copiesSummaryLine } from '../../app/copies';
import { statusReport } from '../../app/status';
import { openHome, type GlobalOpts } from './context';
import { openPins } from './commands-pin';
import { printJson, table } from './output';

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
      process.stdout.write(
        (r.copies ? copiesSummaryLine({ ...r.copies, groups: [] }, formatSize) : `copies: not counted for ${r.copiesSkipped} files (vdfs copies counts them)`) + '\n',
      );
      const mem = r.memory;
      process.stdout.write(
        `memory: caches at most ${formatSize(mem.budget.total)} (index ${formatSize(mem.budget.indexCache)} + mmap ${formatSize(mem.budget.indexMmap)}, paths ${formatSize(mem.budget.resolverCache)}, blocks ${formatSize(mem.budget.blockMemory)}); ` +
          (mem.daemon ? `daemon ${mem.daemon.pid} ${formatSize(mem.daemon.rss)} resident (peak ${formatSize(mem.daemon.peakRss)})` : 'no daemon running') +
          (mem.status ? `; this command ${formatSize(mem.status.rss)}` : '') +
          '\n',
      );
      process.stdout.write(`cache: ${formatSize(cache.bytes)} in ${cache.blocks} blocks of at most ${formatSize(cache.maxBytes)} (${cache.dir})\n`);
      process.stdout.write(
        `pins: ${pins.pins}, ${formatSize(pins.fetchedBytes)} of ${formatSize(pins.bytes)} on this device, limit ${formatSize(pins.maxBytes)} (vdfs pin --list)\n`,
      );
    });
}
