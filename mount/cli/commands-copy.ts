import type { Command } from 'commander';
import { PinnedArea } from '../../cache/pinned-area';
import { checkLocationName } from '../../index/locations';
import { FsError } from '../../core/fs-error';
import { formatSize } from '../../app/config';
import { Copier } from '../../app/copy';
import { resolveVirtual } from '../vfs/namespace';
import { ProviderPool, Replicas } from '../vfs/replicas';
import { providerOpener } from '../../app/provider-registry';
import { openHome, type GlobalOpts } from './context';
import { displayName, printJson } from './output';

export function registerCopyCommand(program: Command, g: () => GlobalOpts): void {
  program
    .command('copy <vpath>')
    .description('add a replica of a file in another location (verified, resumable)')
    .requiredOption('--to <location[:dir]>', 'the target location and folder in it (default: its root)')
    .option('--dry-run', 'say what would be copied from where, write nothing')
    .option('--rate <MiBps>', 'fetch at most this many MiB per second (0: unlimited)', '0')
    .option('--json', 'print a JSON document')
    .action(async (vpath: string, o: { to: string; dryRun?: boolean; rate: string; json?: boolean }) => {
      const home = openHome(g());
      const rate = Number(o.rate);
      if (!Number.isFinite(rate) || rate < 0) throw new FsError('EINVAL', '--rate takes MiB per second (0: unlimited)');
      const colon = o.to.indexOf(':');
      const name = colon < 0 ? o.to : o.to.slice(0, colon);
      const dir = colon < 0 ? '' : o.to.slice(colon + 1);
      checkLocationName(name);
      const target = home.locations.get(name);
      const r = resolveVirtual(home, vpath);
      if (r.kind !== 'entry') throw new FsError('EINVAL', `${vpath}: give a file inside a location`);
      const pool = new ProviderPool(providerOpener(home));
      const area = new PinnedArea(home.cacheDir);
      const tty = !o.json && !!process.stderr.isTTY;
      try {
        const rep = await new Copier(home, pool, new Replicas(home, pool, area)).copy(r, target, dir, {
          dryRun: o.dryRun,
          rateBytes: rate * 1024 * 1024,
          progress: tty ? (done, total) => process.stderr.write(`\rcopying: ${formatSize(done)} of ${formatSize(total)}   `) : undefined,
        });
        if (tty && !o.dryRun && !rep.alreadyThere) process.stderr.write('\n');
        if (o.json) return printJson(rep);
        if (rep.alreadyThere) return void process.stdout.write(`${displayName(rep.to)} already holds this content\n`);
        if (rep.dryRun)
          return void process.stdout.write(`would copy ${displayName(rep.from)} (${formatSize(rep.size)}) to ${displayName(rep.to)}, from ${rep.source ?? '(no source)'}\n`);
        process.stdout.write(
          `copied ${displayName(rep.from)} to ${displayName(rep.to)} (${formatSize(rep.size)}, verified${rep.resumedBytes ? `, resumed after ${formatSize(rep.resumedBytes)}` : ''})\n`,
        );
      } finally {
        await pool.close();
      }
    });
}
