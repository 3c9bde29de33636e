import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { fsTree, runModel, startVfsDaemon, uploadsSettled } from './helpers/vfs-model';

// The Vfs over a local folder added with --write-back: writes are staged and copied into place
// by the upload queue. Reads see the staged bytes; once the queue is empty the folder itself
// must hold exactly the oracle's tree.
t.test('vfs model, write-back location: staged writes behave like a real directory and land in the folder', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const oracle = join(dir, 'oracle');
  mkdirSync(src);
  mkdirSync(oracle);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '0']);
  vdfsOk(home, ['location', 'add', 'wb', src, '--write-back']);
  vdfsOk(home, ['scan']);
  const { daemon } = await startVfsDaemon(t, home);
  const queue = daemon.vfs.staged.queue;
  await runModel(
    t,
    oracle,
    {
      vfs: daemon.vfs,
      loc: '/wb',
      caps: { symlinks: true, modes: 'shown', times: false },
      async sourceTree(rel) {
        await uploadsSettled(t, queue);
        return fsTree(join(src, rel));
      },
    },
    { runs: 25 },
  );
});
