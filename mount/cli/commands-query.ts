import { once } from 'node:events';
import type { Command } from 'commander';
import picomatch from 'picomatch';
import { FsError } from '../../core/fs-error';
import type { Entry } from '../../index/entries';
import type { Home } from '../../app/home';
import { formatSize } from '../../app/config';
import { virtualPath } from '../vfs/namespace';
import { ProviderPool, Replicas, type ReplicaInfo } from '../vfs/replicas';
import { createVfs, type Attr, type BlockStore, type Vfs } from '../vfs';
import { providerOpener } from '../../app/provider-registry';
import { splitPath } from '../../core/paths';
import { openHome, type GlobalOpts } from './context';
import { displayName, printJson, table } from './output';

/** ls -l's first letter of each entry type. */
const TYPE_LETTER: Record<string, string> = { dir: 'd', symlink: 'l', fifo: 'p', socket: 's', chardev: 'c', blockdev: 'b' };

/** Every entry holding `hash`, in any location of any node known to this index (best replica first). */
export function replicasOf(home: Home, hash: string): ReplicaInfo[] {
  return new Replicas(home, new ProviderPool(providerOpener(home))).list(hash);
}

/** ls and stat read no content: a block store that never caches (and is never asked). */
const NO_CACHE: BlockStore = { get: (_key, fetch) => fetch() };

/** Runs `fn` on the same Vfs the mount serves, then closes it. */
async function withVfs<T>(home: Home, fn: (vfs: Vfs) => Promise<T>): Promise<T> {
  const vfs = await createVfs(home, { blocks: NO_CACHE, openProvider: providerOpener(home) });
  try {
    return await fn(vfs);
  } finally {
    await vfs.close();
  }
}

/** Exact modification time as ISO-8601 (milliseconds, like the index shows it). */
function mtimeOf(a: Attr): string {
  return new Date(a.ns ? Number(a.ns.mtime / 1_000_000n) : Math.floor(a.mtimeMs)).toISOString();
}

/** The `vdfs ls --json` shape of one entry. */
function item(name: string, a: Attr): { name: string; type: string; size: number; mtime: string; hash: string | null } {
  return { name, type: a.type, size: a.size, mtime: mtimeOf(a), hash: a.hash };
}

function vpathOf(home: Home, e: Pick<Entry, 'id' | 'locationId'>): string {
  return virtualPath(home.locations.byId(e.locationId)!.name, home.entries.pathOf(e.id));
}

/** vdfs ls and stat: through the same Vfs the mount serves. */
function registerBrowseCommands(program: Command, g: () => GlobalOpts): void {
  program
    .command('ls [vpath]')
    .description('list a directory of the virtual namespace (/ lists locations)')
    .option('--json', 'print a JSON document')
    .action(async (vpath: string | undefined, o: { json?: boolean }) => {
      const home = openHome(g());
      // Through the Vfs, so the listing is the mount's: state folders hidden, live sizes, /.vdfs.
      const path = `/${splitPath(vpath ?? '/').join('/')}`;
      const items = await withVfs(home, async (vfs) => {
        const a = await vfs.getattr(path);
        if (a.type !== 'dir') return [item(splitPath(path).at(-1) ?? '', a)];
        // A file's type, size and mtime come from the index: no lstat per file (10,000 of them cost ~0.1 s).
        return (await vfs.readdir(path, { statFiles: false })).map((d) => item(d.name, d.attr));
      });
      if (o.json) return printJson(items);
      process.stdout.write(table(items.map((i) => [TYPE_LETTER[i.type] ?? '-', String(i.size), i.mtime, displayName(i.name) + (i.type === 'dir' ? '/' : '')])));
    });

  program
    .command('stat <vpath>')
    .description('show one entry with every replica of its content')
    .option('--json', 'print a JSON document')
    .action(async (vpath: string, o: { json?: boolean }) => {
      const home = openHome(g());
      const parts = splitPath(vpath);
      if (parts.length === 0 || parts[0] === '.vdfs') throw new FsError('EINVAL', `${vpath} is not an entry of a location`);
      const path = `/${parts.join('/')}`;
      const { e, replicas } = await withVfs(home, async (vfs) => {
        const a = await vfs.getattr(path);
        // Every replica of hashed content (the mount's user.vdfs.replicas); an unhashed file is only itself.
        const loc = home.locations.find(parts[0]);
        const reps: Pick<ReplicaInfo, 'location' | 'path' | 'node' | 'online'>[] = a.hash
          ? (JSON.parse((await vfs.getxattr(path, 'user.vdfs.replicas')).toString('utf8')) as ReplicaInfo[])
          : a.type === 'file' && loc
            ? [{ location: loc.name, path, node: home.config.name, online: loc.online }]
            : [];
        return { e: a, replicas: reps };
      });
      const out = { path, type: e.type, size: e.size, mtime: mtimeOf(e), hash: e.hash, replicas };
      if (o.json) return printJson(out);
      process.stdout.write(
        `${path}\n  type ${e.type}, ${e.size} bytes (${formatSize(e.size)}), modified ${out.mtime}\n  hash ${e.hash ?? '(not hashed yet)'}\n` +
          replicas.map((x) => `  replica ${x.path} on ${x.node}${x.online ? '' : ' (offline)'}\n`).join(''),
      );
    });
}

/** vdfs find and dupes: from the index, streamed. */
function registerSearchCommands(program: Command, g: () => GlobalOpts): void {
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
        const d = {
          hash: gr.hash,
          size: gr.size,
          paths: home.entries
            .byHash(gr.hash)
            .filter((e) => e.type === 'file')
            .map((e) => vpathOf(home, e))
            .sort(),
        };
        if (o.json) text += `${n === 0 ? '[\n' : ',\n'}${JSON.stringify(d)}`;
        else text += `${d.hash} ${formatSize(d.size)} x${d.paths.length}\n${d.paths.map((p) => `  ${displayName(p)}\n`).join('')}`;
        n++;
        if (text.length > 64 * 1024) {
          await writeOut(text);
          text = '';
        }
      }
      if (o.json) text += n === 0 ? '[]\n' : '\n]\n';
      else if (n === 0) text += 'No duplicates.\n';
      await writeOut(text);
    });
}

/** vdfs ls|stat|find|dupes. */
export function registerQueryCommands(program: Command, g: () => GlobalOpts): void {
  registerBrowseCommands(program, g);
  registerSearchCommands(program, g);
}

/** Writes to stdout and waits for it to drain when its buffer is full. */
async function writeOut(text: string): Promise<void> {
  if (!process.stdout.write(text)) await once(process.stdout, 'drain');
}
