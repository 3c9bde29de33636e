import type { Command } from 'commander';
import { resolve as resolvePath } from 'node:path';
import { FsError } from '../../core/fs-error';
import type { startDaemon as StartDaemon } from '../../app/daemon';
import type { FuseBackend } from '../fuse/fuse-mount';
import { openBlockStore } from '../../app/block-store';
import { createLogger } from '../../core/log';
import { createVfs } from '../vfs';
import { providerOpener } from '../../app/provider-registry';
import { openHome, type GlobalOpts } from './context';

function waitForSignal(): Promise<string> {
  return new Promise((res) => {
    const on = (sig: string) => res(sig);
    process.once('SIGINT', on);
    process.once('SIGTERM', on);
    process.once('SIGHUP', on);
  });
}

/** Parses "[HOST:]PORT" (default host 127.0.0.1). Throws EINVAL. */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new FsError('EINVAL', `cannot read ${JSON.stringify(text)} as [HOST:]PORT (e.g. 8080 or 127.0.0.1:8080)`);
  return { host: m[1] || '127.0.0.1', port };
}

export interface DaemonCliOptions {
  allowOther?: boolean;
  webdav?: string;
  peer?: string;
  webdavInsecureNoAuth?: boolean;
  fuseBackend?: string;
  passthrough?: boolean;
  /** false with --no-fuse-uring. */
  fuseUring?: boolean;
}

const NO_AUTH_HELP = 'INSECURE: serve WebDAV on loopback WITHOUT any password, so every local user, container and app can read and write the share';

/** `http://user@host:port/`: the URL a client is given, with the user name in it. */
export function withUser(url: string, user: string): string {
  return url.replace(/^(https?:\/\/)/, `$1${encodeURIComponent(user)}@`);
}

/** Checks --fuse-backend. Throws EINVAL. */
export function parseBackend(v: string | undefined): FuseBackend | undefined {
  if (v === undefined || v === 'native' || v === 'compat') return v;
  throw new FsError('EINVAL', `--fuse-backend takes native or compat, not ${JSON.stringify(v)}`);
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs the daemon in the foreground until SIGINT/SIGTERM. */
export async function runDaemon(g: GlobalOpts, mountpoint: string | undefined, o: DaemonCliOptions): Promise<void> {
  const home = openHome(g);
  const log = createLogger(g.logLevel);
  const blocks = await openBlockStore(home);
  let daemon;
  try {
    const fuseBackend = parseBackend(o.fuseBackend);
    // Loaded here: the daemon brings FUSE, WebDAV and the peer server, which other commands never use.
    const { startDaemon } = require('../../app/daemon') as { startDaemon: typeof StartDaemon };
    daemon = await startDaemon(home, {
      mountpoint,
      allowOther: o.allowOther,
      fuseBackend,
      passthrough: o.passthrough,
      fuseUring: o.fuseUring,
      webdav: o.webdav ? parseHostPort(o.webdav) : undefined,
      webdavInsecureNoAuth: o.webdavInsecureNoAuth,
      peer: o.peer ? parseHostPort(o.peer) : undefined,
      log,
      blocks,
    });
  } catch (err) {
    await blocks.close();
    throw err;
  }
  if (daemon.webdav) {
    process.stdout.write(`vdfs serving WebDAV at ${daemon.webdav.url}${daemon.webdavFingerprint ? ` (certificate SHA-256 ${daemon.webdavFingerprint})` : ''}\n`);
    process.stdout.write(
      daemon.webdavUser
        ? `WebDAV login: ${withUser(daemon.webdav.url, daemon.webdavUser)} (user ${daemon.webdavUser}; password: vdfs --home ${shellQuote(resolvePath(home.dir))} webdav credentials)\n`
        : 'WebDAV has NO authentication (--webdav-insecure-no-auth): every local user and process can read and write the share\n',
    );
  }
  if (daemon.peers?.url) process.stdout.write(`vdfs serving peers at ${daemon.peers.url}\n`);
  if (daemon.fuse) process.stdout.write(`vdfs mounted at ${daemon.fuse.mountpoint}\n`);
  log.info({ mountpoint: daemon.fuse?.mountpoint, fuseBackend: daemon.fuse?.backend, webdav: daemon.webdav?.url, home: home.dir }, 'running; stop with Ctrl-C or SIGTERM');
  // Stop on a signal, or when the mount was removed from outside (fusermount -u, eject).
  const sig = await Promise.race([waitForSignal(), ...(daemon.fuse ? [daemon.fuse.closed.then(() => 'unmounted')] : [])]);
  log.info({ signal: sig }, 'stopping');
  await daemon.stop();
  await blocks.close();
  process.stdout.write(daemon.fuse ? 'vdfs unmounted\n' : 'vdfs stopped\n');
}

export function registerMountCommands(program: Command, g: () => GlobalOpts): void {
  program
    .command('mount <mountpoint>')
    .description('foreground daemon: FUSE mount of every location (plus WebDAV when asked)')
    .option('--allow-other', 'let other users in, the kernel checking file modes')
    .option('--webdav <[host:]port>', 'also serve WebDAV (default host 127.0.0.1)')
    .option('--webdav-insecure-no-auth', NO_AUTH_HELP)
    .option('--peer <[host:]port>', 'also serve paired peers')
    .option('--fuse-backend <native|compat>', 'FUSE front end: native (the vdfs addon, default) or compat (fuse-native)')
    .option(
      '--passthrough',
      'native backend, root, Linux >= 6.9: the kernel reads and writes local files itself (an open descriptor keeps its file when the name is replaced, as on a disk)',
    )
    .option('--no-fuse-uring', 'native backend: take every request from /dev/fuse even when the kernel offers FUSE over io_uring (Linux >= 6.14, fuse.enable_uring)')
    .action((mountpoint: string, o: DaemonCliOptions) => runDaemon(g(), mountpoint, o));

  program
    .command('serve')
    .description('foreground daemon without FUSE: WebDAV and/or the peer server')
    .option('--webdav <[host:]port>', 'serve WebDAV (default host 127.0.0.1)')
    .option('--webdav-insecure-no-auth', NO_AUTH_HELP)
    .option('--peer <[host:]port>', 'serve paired peers')
    .action((o: DaemonCliOptions) => {
      if (!o.webdav && !o.peer) throw new FsError('EINVAL', 'serve what? give --webdav [HOST:]PORT (and/or --peer [HOST:]PORT)');
      return runDaemon(g(), undefined, o);
    });

  program
    .command('cat <vpath>')
    .description('write a file to stdout through the same read pipeline as the mount')
    .option('--offset <n>', 'start at byte N', '0')
    .option('--length <n>', 'at most N bytes')
    .action(async (vpath: string, o: { offset: string; length?: string }) => {
      const offset = Number(o.offset);
      const length = o.length === undefined ? Infinity : Number(o.length);
      if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', '--offset takes a whole number of bytes');
      if (length !== Infinity && (!Number.isSafeInteger(length) || length < 0)) throw new FsError('EINVAL', '--length takes a whole number of bytes');
      const home = openHome(g());
      const blocks = await openBlockStore(home);
      const vfs = await createVfs(home, { blocks, openProvider: providerOpener(home) });
      const fh = await vfs.open(vpath);
      try {
        let pos = offset;
        let left = length;
        const chunk = 1 << 20;
        while (left > 0) {
          const buf = await vfs.read(fh, pos, Math.min(chunk, left));
          if (buf.length === 0) break;
          if (!process.stdout.write(buf)) await new Promise((r) => process.stdout.once('drain', r));
          pos += buf.length;
          left -= buf.length;
        }
      } finally {
        await vfs.release(fh);
        await vfs.close();
        await blocks.close();
      }
    });
}
