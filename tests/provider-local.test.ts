import t from 'tap';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LocalProvider } from '../providers/local/local-provider';
import { providerConformance } from './helpers/provider-conformance';

providerConformance(t, 'local', async ({ readonly }) => {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-local-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  const provider = new LocalProvider(root, readonly);
  return {
    provider,
    async seed(files) {
      for (const [rel, item] of Object.entries(files)) {
        const abs = join(root, rel);
        mkdirSync(dirname(abs), { recursive: true });
        if (typeof item === 'object' && 'dir' in item) mkdirSync(abs, { recursive: true });
        else if (typeof item === 'object' && 'symlink' in item) {
          rmSync(abs, { force: true });
          symlinkSync(item.symlink, abs);
        } else writeFileSync(abs, item);
      }
    },
    async unreachable() {
      renameSync(root, join(dir, 'unplugged'));
    },
    async cleanup() {
      await provider.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
