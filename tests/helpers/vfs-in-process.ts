import { Home } from '../../app/home';
import { openBlockStore } from '../../app/block-store';
import { providerOpener } from '../../app/provider-registry';
import { createVfs } from '../../mount/vfs';

/** The VFS core in-process, without the kernel, over a real home and block cache; closed at teardown. */
export async function openVfsInProcess(t: { teardown(fn: () => unknown): void }, homeDir: string) {
  const home = Home.open(homeDir);
  const blocks = await openBlockStore(home);
  const vfs = await createVfs(home, { blocks, openProvider: providerOpener(home) });
  t.teardown(async () => {
    await vfs.close();
    await blocks.close();
    home.close();
  });
  return { vfs, blocks, home };
}
