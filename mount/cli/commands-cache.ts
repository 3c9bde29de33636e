import type { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { FsError } from '../../core/fs-error';
import { openBlockStore } from '../../app/block-store';
import { formatSize } from '../../app/config';
import { openHome, type GlobalOpts } from './context';
import { printJson } from './output';

/** Bytes and files under the cache's block directory, measured on disk. */
export async function diskUsage(dir: string): Promise<{ bytes: number; blocks: number }> {
  let bytes = 0;
  let blocks = 0;
  for (const sub of await fsp.readdir(dir).catch(() => [] as string[])) {
    for (const f of await fsp.readdir(join(dir, sub)).catch(() => [] as string[])) {
      const st = await fsp.stat(join(dir, sub, f)).catch(() => undefined);
      if (st?.isFile()) {
        bytes += st.size;
        blocks++;
      }
    }
  }
  return { bytes, blocks };
}

export function registerCacheCommands(program: Command, g: () => GlobalOpts): void {
  const cache = program.command('cache').description('the block cache');
  cache
    .command('stats')
    .option('--json', 'print a JSON document')
    .action(async (o: { json?: boolean }) => {
      const home = openHome(g());
      const store = await openBlockStore(home);
      try {
        const max = home.config['cache.maxSize'];
        const s = store.cache ? store.cache.stats() : undefined;
        const usage = s ? { bytes: s.bytes, blocks: s.blocks } : await diskUsage(join(home.cacheDir, 'blocks'));
        const out = { dir: home.cacheDir, maxBytes: max, ...usage, inUseByDaemon: !store.cache };
        if (o.json) return printJson(out);
        process.stdout.write(`${out.dir}: ${formatSize(out.bytes)} in ${out.blocks} blocks of at most ${formatSize(max)}${out.inUseByDaemon ? ' (a running vdfs owns it)' : ''}\n`);
      } finally {
        await store.close();
      }
    });
  cache
    .command('clear')
    .description('drop every cached block (content stays in its locations)')
    .action(async () => {
      const home = openHome(g());
      const store = await openBlockStore(home);
      try {
        if (!store.cache) throw new FsError('EBUSY', 'a running vdfs (mount or serve) owns the cache: stop it first');
        const before = store.cache.stats().bytes;
        await store.cache.clear();
        process.stdout.write(`cleared ${formatSize(before)}\n`);
      } finally {
        await store.close();
      }
    });
}
