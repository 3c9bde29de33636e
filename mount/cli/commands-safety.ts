import type { Command } from 'commander';
import { FsError } from '../../core/fs-error';
import { formatSize } from '../../app/config';
import { copiesReport } from '../../app/copies';
import type { Home } from '../../app/home';
import { resolveVirtual, virtualPath } from '../vfs/namespace';
import { ProviderPool, Replicas, type ReplicaInfo } from '../vfs/replicas';
import { providerOpener } from '../../app/provider-registry';

import { openHome, type GlobalOpts } from './context';
import { displayName, printJson } from './output';

/** The `vdfs whereis --json` document. */
export interface WhereisReport {
  path: string;
  hash: string | null;
  size: number;
  replicas: ReplicaInfo[];
}

/** Every replica of the file at `vpath`: the same listing as the `user.vdfs.replicas` xattr. Throws ENOENT, EISDIR, EINVAL. */
export function whereis(home: Home, vpath: string): WhereisReport {
  const r = resolveVirtual(home, vpath);
  if (r.kind !== 'entry') throw new FsError('EINVAL', `${vpath} is not an entry of a location`);
  const e = r.entry;
  if (e.type !== 'file') throw new FsError('EISDIR', `${vpath} is a ${e.type}: whereis takes a file (for a folder: vdfs copies ${vpath})`);
  const path = virtualPath(r.location.name, r.rel);
  if (e.hash) return { path, hash: e.hash, size: e.size, replicas: new Replicas(home, new ProviderPool(providerOpener(home))).list(e.hash) };
  // Not hashed yet: only the entry itself is known to hold it.
  const l = r.location;
  return {
    path,
    hash: null,
    size: e.size,
    replicas: [
      {
        location: l.name,
        path,
        node: home.config.name,
        online: l.online,
        lastSeen: l.online ? new Date().toISOString() : l.lastSeen !== null ? new Date(l.lastSeen).toISOString() : null,
        lastVerified: null,
      },
    ],
  };
}

function ago(iso: string | null): string {
  if (!iso) return 'never';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 120) return 'now';
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172_800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function registerSafetyCommands(program: Command, g: () => GlobalOpts): void {
  program
    .command('whereis <vpath>')
    .description("every replica of a file's content: location, path there, online, last seen, last verified")
    .option('--json', 'print a JSON document')
    .action((vpath: string, o: { json?: boolean }) => {
      const rep = whereis(openHome(g()), vpath);
      if (o.json) return printJson(rep);
      process.stdout.write(`${displayName(rep.path)}  ${rep.hash ?? '(not hashed yet)'}  ${formatSize(rep.size)}\n`);
      for (const x of rep.replicas) {
        process.stdout.write(`  ${displayName(x.path)} on ${x.node}: ${x.online ? 'online' : `OFFLINE, last seen ${ago(x.lastSeen)}`}, verified ${ago(x.lastVerified)}\n`);
      }
    });

  program
    .command('copies [vpath]')
    .description('files whose content is on fewer distinct locations than copies.min, grouped by where they are')
    .option('--min <n>', 'use this minimum instead of the copies.min setting')
    .option('--json', 'print a JSON document')
    .action((vpath: string | undefined, o: { min?: string; json?: boolean }) => {
      const home = openHome(g());
      let min: number | undefined;
      if (o.min !== undefined) {
        min = Number(o.min);
        if (!Number.isSafeInteger(min) || min < 1) throw new FsError('EINVAL', '--min takes a whole number of copies >= 1');
      }
      let scope: { entryId: number; vpath: string } | undefined;
      if (vpath && vpath !== '/') {
        const r = resolveVirtual(home, vpath);
        if (r.kind !== 'entry') throw new FsError('EINVAL', `${vpath} is not an entry of a location`);
        scope = { entryId: r.entry.id, vpath: virtualPath(r.location.name, r.rel) };
      }
      const rep = copiesReport(home, { scope, min });
      if (o.json) return printJson(rep);
      const h = rep.histogram;
      process.stdout.write(`${rep.files} files under ${rep.scope}: 1 copy ${h['1']}, 2 copies ${h['2']}, 3+ copies ${h['3+']} (minimum ${rep.min})\n`);
      if (rep.under.files === 0) return void process.stdout.write('Every file has enough copies.\n');
      process.stdout.write(`${rep.under.files} files (${formatSize(rep.under.bytes)}) have fewer than ${rep.min} copies:\n`);
      for (const gr of rep.groups) {
        const where = gr.locations.map((l) => `${l.name} (${l.online ? 'online' : `offline, last seen ${ago(l.lastSeen)}`})`).join(' + ');
        process.stdout.write(`\n  ${gr.files} files (${formatSize(gr.bytes)}) only on ${where}\n`);
        for (const p of gr.paths.slice(0, 10)) process.stdout.write(`    ${displayName(p)}\n`);
        if (gr.paths.length > 10) process.stdout.write(`    ... and ${gr.paths.length - 10} more (--json lists all)\n`);
      }
    });
}
