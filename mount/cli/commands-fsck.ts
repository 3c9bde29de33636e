import type { Command } from 'commander';
import { PinnedArea } from '../../cache/pinned-area';
import { FsError } from '../../core/fs-error';
import { formatSize } from '../../app/config';
import { Fsck } from '../../app/fsck';
import { resolveVirtual } from '../vfs/namespace';
import { ProviderPool, Replicas } from '../vfs/replicas';
import { providerOpener } from '../../app/provider-registry';
import { openHome, type GlobalOpts } from './context';
import { displayName, printJson } from './output';

export function registerFsckCommand(program: Command, g: () => GlobalOpts): void {
  program
    .command('fsck [target]')
    .description('re-read content and check it against the index (bit rot, missing files); --repair restores from a good replica')
    .option('--repair', 'restore rotten or missing local files from a verified replica (never files edited since they were indexed)')
    .option('--rate <MiBps>', 'read at most this many MiB per second (0: unlimited)', '64')
    .option('--json', 'print a JSON document')
    .action(async (target: string | undefined, o: { repair?: boolean; rate: string; json?: boolean }) => {
      const home = openHome(g());
      const rate = Number(o.rate);
      if (!Number.isFinite(rate) || rate < 0) throw new FsError('EINVAL', '--rate takes MiB per second (0: unlimited)');
      const scope = (target ? [target.includes('/') ? target : `/${target}`] : home.locations.list().map((l) => `/${l.name}`)).map((v) => {
        const r = resolveVirtual(home, v);
        if (r.kind !== 'entry') throw new FsError('EINVAL', `${v}: give a location name or a path inside one`);
        return { location: r.location, entry: r.entry, vpath: v };
      });
      const pool = new ProviderPool(providerOpener(home));
      const area = new PinnedArea(home.cacheDir);
      try {
        const rep = await new Fsck(home, pool, new Replicas(home, pool, area), { repair: !!o.repair, rateBytes: rate * 1024 * 1024 }).run(scope);
        if (o.json) printJson(rep);
        else {
          for (const p of rep.problems) process.stdout.write(`${p.status.toUpperCase()}${p.repaired ? ' (repaired)' : ''}  ${displayName(p.path)}: ${p.detail ?? ''}\n`);
          process.stdout.write(
            `checked ${rep.checked} files (${formatSize(rep.bytes)} intact) in ${rep.seconds.toFixed(1)} s: ${rep.ok} ok, ${rep.problems.length} not ok, ${rep.repaired} repaired, ${rep.unrepaired} unrepaired\n`,
          );
        }
        if (rep.unrepaired > 0) process.exitCode = 1;
      } finally {
        await pool.close();
      }
    });
}
