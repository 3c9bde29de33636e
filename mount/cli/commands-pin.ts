import type { Command } from 'commander';
import { PinnedArea } from '../../cache/pinned-area';
import type { Location } from '../../index/locations';
import { FsError } from '../../core/fs-error';
import { formatSize } from '../../app/config';
import type { Home } from '../../app/home';
import { Pins } from '../vfs/pins';
import { resolveVirtual } from '../vfs/namespace';
import { ProviderPool, Replicas } from '../vfs/replicas';
import { providerOpener } from '../../app/provider-registry';
import { openHome, type GlobalOpts } from './context';
import { displayName, printJson, table } from './output';

/** Pins over the home, for one command; close() closes its providers. */
export function openPins(home: Home): { pins: Pins; close(): Promise<void> } {
  const pool = new ProviderPool(providerOpener(home));
  const area = new PinnedArea(home.cacheDir);
  return { pins: new Pins(home, area, new Replicas(home, pool, area)), close: () => pool.close() };
}

/** Each path as a location entry. Throws EINVAL for the root or a virtual view, ENOENT for what is not indexed. */
function targetsOf(home: Home, vpaths: string[]): { loc: Location; rel: string }[] {
  return vpaths.map((v) => {
    const r = resolveVirtual(home, v);
    if (r.kind !== 'entry') throw new FsError('EINVAL', `${v}: pin a file or folder inside a location (or a whole location, /NAME)`);
    if (r.entry.type === 'symlink') throw new FsError('EINVAL', `${v} is a symlink: pin what it points to`);
    return { loc: r.location, rel: r.rel };
  });
}

/** Fetches until every pin is here; throws EHOSTDOWN/EIO when a pass fetched nothing and some content failed. */
async function waitFetched(pins: Pins, tty: boolean): Promise<void> {
  for (;;) {
    const r = await pins.sync(tty ? (done, total) => process.stderr.write(`\rfetching pinned content: ${formatSize(done)} of ${formatSize(total)}   `) : undefined);
    if (tty) process.stderr.write('\n');
    const rep = pins.report();
    if (rep.pins.every((p) => p.state !== 'fetching')) return;
    if (r.fetched === 0 && r.failed.length > 0) {
      throw new FsError('EHOSTDOWN', `pinned content could not be fetched from any replica (the pins stay; a running vdfs keeps trying): ${r.failed.slice(0, 3).join('; ')}`);
    }
  }
}

export function registerPinCommands(program: Command, g: () => GlobalOpts): void {
  program
    .command('pin [vpaths...]')
    .description('keep files or folders on this device (available offline); folders also cover files added later')
    .option('--wait', 'return when the content is on this device')
    .option('--list', 'list the pins and how much of each is here')
    .option('--json', 'print a JSON document')
    .action(async (vpaths: string[], o: { wait?: boolean; list?: boolean; json?: boolean }) => {
      const home = openHome(g());
      const p = openPins(home);
      try {
        if (o.list || vpaths.length === 0) {
          if (vpaths.length > 0) throw new FsError('EINVAL', '--list takes no paths');
          const rep = p.pins.report();
          if (o.json) return printJson(rep);
          process.stdout.write(`pinned: ${formatSize(rep.fetchedBytes)} of ${formatSize(rep.bytes)} here, limit ${formatSize(rep.maxBytes)} (cache.pinnedMax)\n`);
          if (rep.pins.length === 0) return void process.stdout.write('No pins.\n');
          process.stdout.write(
            table([
              ['PIN', 'STATE', 'FILES', 'HERE'],
              ...rep.pins.map((x) => [displayName(x.path), x.state, `${x.fetchedFiles}/${x.files}`, `${formatSize(x.fetchedBytes)} of ${formatSize(x.bytes)}`]),
            ]),
          );
          return;
        }
        const added = p.pins.add(targetsOf(home, vpaths));
        if (o.wait) await waitFetched(p.pins, !o.json && !!process.stderr.isTTY);
        const rep = p.pins.report();
        if (o.json) return printJson({ added: added.added, ...rep });
        process.stdout.write(
          `pinned ${vpaths.length} path(s); ${formatSize(rep.fetchedBytes)} of ${formatSize(rep.bytes)} pinned content is on this device${o.wait ? '' : ' (a running vdfs fetches the rest; --wait to wait)'}\n`,
        );
        const unhashed = rep.pins.reduce((s, x) => s + x.unhashed, 0);
        if (unhashed > 0) process.stdout.write(`${unhashed} file(s) are not hashed yet and cannot be fetched verified: vdfs scan LOCATION --hash\n`);
      } finally {
        await p.close();
      }
    });

  program
    .command('unpin <vpaths...>')
    .description('stop keeping files or folders on this device (their pinned content is dropped)')
    .option('--json', 'print a JSON document')
    .action(async (vpaths: string[], o: { json?: boolean }) => {
      const home = openHome(g());
      const p = openPins(home);
      try {
        const removed = await p.pins.remove(targetsOf(home, vpaths));
        const notPinned = vpaths.filter((_, i) => !removed[i]);
        if (o.json) return printJson({ removed: removed.filter(Boolean).length, notPinned });
        if (notPinned.length) process.stderr.write(`not pinned: ${notPinned.map(displayName).join(', ')}\n`);
        process.stdout.write(`unpinned ${removed.filter(Boolean).length} path(s)\n`);
      } finally {
        await p.close();
      }
    });
}
