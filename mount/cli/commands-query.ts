import { once } from 'node:events';
import type { Command } from 'commander';
import picomatch from 'picomatch';
import { FsError } from '../../core/fs-error';
import type { Entry } from '../../index/entries';
import type { Home } from '../../app/home';
import { formatSize } from '../../app/config';
import { resolveVirtual, virtualPath } from '../vfs/namespace';
import { ProviderPool, Replicas, type ReplicaInfo } from '../vfs/replicas';
import { openHome, type GlobalOpts } from './context';
import { displayName, isoTime, listing, printJson, table } from './output';

/** Every entry holding `hash`, in any location of any node known to this index (best replica first). */
export function replicasOf(home: Home, hash: string): ReplicaInfo[] {
  return new Replicas(home, new ProviderPool()).list(hash);
}

function vpathOf(home: Home, e: Pick<Entry, 'id' | 'locationId'>): string {
  return virtualPath(home.locations.byId(e.locationId)!.name, home.entries.pathOf(e.id));
}

export function registerQueryCommands(program: Command, g: () => GlobalOpts): void {
  program
    .command('ls [vpath]')
    .description('list a directory of the virtual namespace (/ lists locations)')
    .option('--json', 'print a JSON document')
    .action((vpath: string | undefined, o: { json?: boolean }) => {
      const home = openHome(g());
      const r = resolveVirtual(home, vpath ?? '/');
      let items: ReturnType<typeof listing>[];
      if (r.kind === 'root') {
        items = home.locations.list().map((l) => {
          const root = home.entries.root(l.id);
          return { name: l.name, type: 'dir', size: 0, mtime: root ? isoTime(root.mtimeSec, root.mtimeNsec) : new Date(0).toISOString(), hash: null };
        });
      } else if (r.kind === 'entry') {
        items = r.entry.type === 'dir' ? home.entries.children(r.entry.id).map(listing) : [listing(r.entry)];
      } else throw new FsError('ENOTSUP', 'the /.vdfs views are served by the mount (vdfs mount)');
      if (o.json) return printJson(items);
      process.stdout.write(table(items.map((i) => [i.type === 'dir' ? 'd' : i.type === 'symlink' ? 'l' : '-', String(i.size), i.mtime, displayName(i.name) + (i.type === 'dir' ? '/' : '')])));
    });

  program
    .command('stat <vpath>')
    .description('show one entry with every replica of its content')
    .option('--json', 'print a JSON document')
    .action((vpath: string, o: { json?: boolean }) => {
      const home = openHome(g());
      const r = resolveVirtual(home, vpath);
      if (r.kind !== 'entry') throw new FsError('EINVAL', `${vpath} is not an entry of a location`);
      const e = r.entry;
      const path = virtualPath(r.location.name, r.rel);
      const replicas = e.hash ? replicasOf(home, e.hash)
        : e.type === 'file' ? [{ location: r.location.name, path, node: home.config.name, online: r.location.online }] : [];
      const out = { path, type: e.type, size: e.size, mtime: isoTime(e.mtimeSec, e.mtimeNsec), hash: e.hash, replicas };
      if (o.json) return printJson(out);
      process.stdout.write(
        `${path}\n  type ${e.type}, ${e.size} bytes (${formatSize(e.size)}), modified ${out.mtime}\n  hash ${e.hash ?? '(not hashed yet)'}\n` +
          replicas.map((x) => `  replica ${x.path} on ${x.node}${x.online ? '' : ' (offline)'}\n`).join(''),
      );
    });

  program
    .command('find')
    .description('find files by content hash or name')
    .option('--hash <hash>', 'BLAKE3 hash (hex)')
    .option('--name <glob>', 'glob on the file name, e.g. "*.jpg"')
    .option('--json', 'print a JSON document')
    .action((o: { hash?: string; name?: string; json?: boolean }) => {
      const home = openHome(g());
      if (!o.hash && !o.name) throw new FsError('EINVAL', 'give --hash HASH and/or --name GLOB');
      if (o.hash && !/^[0-9a-f]{64}$/.test(o.hash.toLowerCase())) throw new FsError('EINVAL', '--hash takes 64 hex digits (what b3sum prints)');
      // Streamed: only the matches are held (and sorted), never the whole index.
      const rows: Iterable<Pick<Entry, 'id' | 'locationId' | 'name'>> = o.hash ? home.entries.byHash(o.hash.toLowerCase()) : home.entries.iterateNames();
      const isMatch = o.name ? picomatch(o.name, { dot: true }) : () => true;
      const paths: string[] = [];
      for (const e of rows) if (isMatch(e.name)) paths.push(vpathOf(home, e));
      paths.sort();
      if (o.json) return printJson(paths);
      process.stdout.write(paths.map((p) => displayName(p) + '\n').join(''));
    });

  program
    .command('dupes')
    .description('groups of files with identical content')
    .option('--include-empty', 'also group empty files')
    .option('--json', 'print a JSON document')
    .action(async (o: { includeEmpty?: boolean; json?: boolean }) => {
      const home = openHome(g());
      // Streamed, one group at a time, waiting for stdout to drain (a pipe to a slow reader
      // would otherwise queue the whole answer in memory).
      let n = 0;
      let text = '';
      for (const gr of home.entries.duplicateGroups(!!o.includeEmpty)) {
        const d = { hash: gr.hash, size: gr.size, paths: home.entries.byHash(gr.hash).filter((e) => e.type === 'file').map((e) => vpathOf(home, e)).sort() };
        if (o.json) text += `${n === 0 ? '[\n' : ',\n'}${JSON.stringify(d)}`;
        else text += `${d.hash} ${formatSize(d.size)} x${d.paths.length}\n${d.paths.map((p) => `  ${displayName(p)}\n`).join('')}`;
        n++;
        if (text.length > 64 * 1024) { await writeOut(text); text = ''; }
      }
      if (o.json) text += n === 0 ? '[]\n' : '\n]\n';
      else if (n === 0) text += 'No duplicates.\n';
      await writeOut(text);
    });
}

/** Writes to stdout and waits for it to drain when its buffer is full. */
async function writeOut(text: string): Promise<void> {
  if (!process.stdout.write(text)) await once(process.stdout, 'drain');
}

