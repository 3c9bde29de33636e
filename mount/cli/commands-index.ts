import type { Command } from 'commander';
import { ensureWebdavCredential } from '../../app/webdav-access';
import { Home, resolveHomeDir } from '../../app/home';
import { checkNewLocation, parseLocationUri } from '../../app/provider-registry';
import { FsError } from '../../core/fs-error';
import { formatSize, isConfigKey, setConfigValue } from '../../app/config';
import { openHome, type GlobalOpts } from './context';
import { printJson, table } from './output';
import type { Location } from '../../index/locations';
import { addPeerLocation } from '../../app/peer/replicator';

/** The `--json` shape of a location, the same for `location add` and `location ls`. */
function locationJson(l: Location): { name: string; uri: string; kind: string; readonly: boolean; online: boolean; ignore: string[]; writeBack: boolean; lastScan: string | null } {
  return {
    name: l.name,
    uri: l.uri,
    kind: l.kind,
    readonly: l.readonly,
    online: l.online,
    ignore: l.options.ignore ?? [],
    writeBack: !!l.options.writeBack,
    lastScan: l.lastScan ? new Date(l.lastScan).toISOString() : null,
  };
}

/** vdfs location add, ls and rm. */
function registerLocationCommands(program: Command, g: () => GlobalOpts): void {
  const loc = program.command('location').description('manage locations');
  loc
    .command('add <name> <uri>')
    .description('add a location: an absolute path (or s3://, gdrive://, peer:// later)')
    .option('--readonly', 'refuse every change with EROFS')
    .option('--write-back', 'local folders: stage writes and copy them into place after close (slow or flaky disks)')
    // Repeatable rather than variadic: a variadic option would swallow NAME and URI when
    // it comes first (`location add --ignore '*.tmp' docs ~/docs`).
    .option('--ignore <pattern>', 'a gitignore-style rule on top of the default OS-junk rules (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--json', 'print a JSON document')
    .action(async (name: string, uri: string, o: { readonly?: boolean; writeBack?: boolean; ignore?: string[]; json?: boolean }) => {
      const home = openHome(g());
      const parsed = parseLocationUri(uri);
      checkNewLocation(parsed);
      if (parsed.ownedElsewhere) {
        // Asks the peer now and backfills the tree: browsable at once, then a daemon follows the feed.
        const { location, entries } = await addPeerLocation(home, await home.keys(), name, parsed.uri);
        if (o.json) return printJson({ ...locationJson(location), entries });
        return void process.stdout.write(`Added peer location ${location.name} -> ${location.uri} (${entries} entries, read-only); a running daemon keeps it up to date\n`);
      }
      const added = home.db
        .transaction(() =>
          home.locations.add({
            name,
            uri: parsed.uri,
            kind: parsed.kind,
            ownerNode: home.nodeId,
            readonly: !!o.readonly,
            options: { ignore: o.ignore ?? [], ...(o.writeBack ? { writeBack: true } : {}) },
          }),
        )
        .immediate();
      if (o.json) printJson(locationJson(added));
      else process.stdout.write(`Added location ${added.name} -> ${added.uri}${added.readonly ? ' (read-only)' : ''}. Index it with: vdfs scan ${added.name}\n`);
    });
  loc
    .command('ls')
    .description('list locations')
    .option('--json', 'print a JSON document')
    .action((o: { json?: boolean }) => {
      const home = openHome(g());
      const locs = home.locations.list();
      if (o.json) return printJson(locs.map(locationJson));
      if (locs.length === 0) return void process.stdout.write('No locations yet. Add one: vdfs location add NAME /path/to/folder\n');
      process.stdout.write(table([['NAME', 'KIND', 'STATE', 'URI'], ...locs.map((l) => [l.name, l.kind, (l.online ? 'online' : 'offline') + (l.readonly ? ',ro' : ''), l.uri])]));
    });
  loc
    .command('rm <name>')
    .description('forget a location (its files are not touched)')
    .action((name: string) => {
      openHome(g()).locations.remove(name);
      process.stdout.write(`Removed location ${name} from the index (no files were touched)\n`);
    });
}

/** vdfs config get and set. */
function registerConfigCommands(program: Command, g: () => GlobalOpts): void {
  const config = program.command('config').description('read or change settings');
  config
    .command('get [key]')
    .option('--json', 'print a JSON document')
    .action((key: string | undefined, o: { json?: boolean }) => {
      const cfg = openHome(g()).config;
      if (key === undefined) return o.json ? printJson(cfg) : void process.stdout.write(table(Object.entries(cfg).map(([k, v]) => [k, String(v)])));
      if (!isConfigKey(key)) throw new FsError('EINVAL', `unknown config key ${JSON.stringify(key)}`);
      if (o.json) printJson({ [key]: cfg[key] });
      else process.stdout.write(`${cfg[key]}\n`);
    });
  config.command('set <key> <value>').action((key: string, value: string) => {
    const home = openHome(g());
    const next = setConfigValue(home.config, key, value);
    home.saveConfig(next);
    const v = next[key as keyof typeof next];
    process.stdout.write(`${key} = ${typeof v === 'number' && key.endsWith('Size') ? `${v} (${formatSize(v)})` : v}\n`);
  });
}

/** init, location add|ls|rm, config get|set. */
export function registerIndexCommands(program: Command, g: () => GlobalOpts): void {
  program
    .command('init')
    .description('create the home (idempotent)')
    .option('--name <name>', 'how peers see this node (default: the host name)')
    .option('--json', 'print a JSON document')
    .action(async (o: { name?: string; json?: boolean }) => {
      const dir = resolveHomeDir(g().home);
      const { home, created } = await Home.initWithKeys(dir, o.name);
      // The WebDAV login exists from the start, so no share is ever served without one
      ensureWebdavCredential(home);
      const out = { home: dir, name: home.config.name, node: home.nodeId, created };
      if (o.json) printJson(out);
      else process.stdout.write(`${created ? 'Created' : 'Already initialised:'} ${dir} (node ${out.name})\n`);
      home.close();
    });
  registerLocationCommands(program, g);
  registerConfigCommands(program, g);
}
