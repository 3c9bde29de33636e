import type { Command } from 'commander';
import { FsError } from '../../providers/fs-error';
import { startDaemon } from '../daemon';
import { openBlockStore } from '../block-store';
import { createLogger } from '../log';
import { createVfs } from '../vfs';
import { openHome, type GlobalOpts } from './context';

function waitForSignal(): Promise<string> {
  return new Promise((res) => {
    const on = (sig: string) => res(sig);
    process.once('SIGINT', on);
    process.once('SIGTERM', on);
    process.once('SIGHUP', on);
  });
}

export function registerMountCommands(program: Command, g: () => GlobalOpts): void {
  program
    .command('mount <mountpoint>')
    .description('foreground daemon: FUSE mount of every location (plus WebDAV when asked)')
    .option('--allow-other', 'let other users in, the kernel checking file modes')
    .action(async (mountpoint: string, o: { allowOther?: boolean }) => {
      const home = openHome(g());
      const log = createLogger(g().logLevel);
      const blocks = await openBlockStore(home);
      const daemon = await startDaemon(home, { mountpoint, allowOther: o.allowOther, log, blocks });
      log.info({ mountpoint: daemon.fuse?.mountpoint, home: home.dir }, 'mounted; stop with Ctrl-C or SIGTERM');
      process.stdout.write(`vdfs mounted at ${daemon.fuse?.mountpoint}\n`);
      const sig = await waitForSignal();
      log.info({ signal: sig }, 'stopping');
      await daemon.stop();
      await blocks.close();
      process.stdout.write('vdfs unmounted\n');
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
      const vfs = await createVfs(home, { blocks });
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
