import type { Command } from 'commander';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { checkOwnedDir } from '../fuse/mountpoint';
import { Home, resolveHomeDir } from '../../app/home';
import { checkLocationName } from '../../index/locations';
import { checkNewLocation, parseLocationUri } from '../../app/provider-registry';
import { closeHome, type GlobalOpts } from './context';
import { ensureWebdavCredential } from '../../app/webdav-access';
import { parseBackend, runDaemon } from './commands-mount';
import { scanLocations } from './commands-scan';

function defaultMountpoint(): string {
  const uid = process.getuid?.() ?? 0;
  return process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'vdfs') : join(tmpdir(), `vdfs-${uid}`, 'mnt');
}

/** A location name from a folder name: the allowed characters only. */
function nameFor(folder: string): string {
  const n =
    basename(folder)
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^\.+/, '') || 'home';
  checkLocationName(n);
  return n;
}

/**
 * `vdfs up`: the quick start on embedded defaults — init, add the folder (read-only unless
 * --writable), scan, mount and serve over WebDAV with the home's credential.
 */
export function registerUpCommand(program: Command, g: () => GlobalOpts): void {
  program
    .command('up [folder]')
    .description('quick start: index FOLDER (default: your home), mount it and serve it over WebDAV')
    .option('--mount <dir>', 'mount point', defaultMountpoint())
    .option('--webdav <[host:]port>', 'WebDAV address', '127.0.0.1:8080')
    .option('--writable', 'share FOLDER read-write (default: read-only, so nothing reached through the share can change your files)')
    .option('--fuse-backend <native|compat>', 'FUSE front end: native (the vdfs addon, default) or compat (fuse-native)')
    .action(async (folder: string | undefined, o: { mount: string; webdav: string; writable?: boolean; fuseBackend?: string }) => {
      parseBackend(o.fuseBackend);
      // The default mount point's parent in /tmp is ours alone: another user may have made
      // /tmp/vdfs-$UID first. Checked before anything else happens.
      if (o.mount === defaultMountpoint() && !process.env.XDG_RUNTIME_DIR) await checkOwnedDir(dirname(o.mount), 'mount point parent', true);
      const dir = resolveHomeDir(g().home);
      const src = resolve(folder ?? homedir());
      const { home } = Home.init(dir);
      const credential = ensureWebdavCredential(home);
      try {
        const parsed = parseLocationUri(src);
        checkNewLocation(parsed);
        const existing = home.locations.list().find((l) => l.uri === parsed.uri);
        const name = existing?.name ?? nameFor(src);
        const readonly = !o.writable;
        if (!existing) home.locations.add({ name, uri: parsed.uri, kind: parsed.kind, ownerNode: home.nodeId, readonly, options: {} });
        else if (existing.readonly !== readonly) home.locations.setReadonly(existing.id, readonly);
        process.stdout.write(readonly ? `Sharing ${src} READ-ONLY (add --writable to allow changes)\n` : `Sharing ${src} read-write (--writable)\n`);
        process.stdout.write(`WebDAV user: ${credential.user}; its password: vdfs${g().home ? ` --home ${dir}` : ''} webdav credentials\n`);
        process.stdout.write(`Indexing ${src} as /${name} ...\n`);
        const { summary: s, failed } = await scanLocations(home, [name], { tty: !!process.stderr.isTTY });
        if (failed) throw failed;
        process.stdout.write(`${s.files} files, ${s.dirs} folders; ${s.hashed} hashed, ${s.unchanged} unchanged, ${s.errors} problems (${s.seconds.toFixed(1)} s)\n`);
      } finally {
        home.close();
        closeHome();
      }
      await runDaemon({ ...g(), home: dir }, o.mount, { webdav: o.webdav, fuseBackend: o.fuseBackend });
    });
}
