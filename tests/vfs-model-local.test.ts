import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { fsTree, runModel, startVfsDaemon } from './helpers/vfs-model';

// The Vfs over a local folder (write-through): random operation sequences against a real
// directory; afterwards the folder itself must hold exactly the oracle's tree.
t.test('vfs model, local location: the Vfs behaves like a real directory, and so does the folder beneath', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const oracle = join(dir, 'oracle');
  mkdirSync(src);
  mkdirSync(oracle);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'm', src]);
  vdfsOk(home, ['scan']);
  const { daemon } = await startVfsDaemon(t, home);
  await runModel(
    t,
    oracle,
    {
      vfs: daemon.vfs,
      loc: '/m',
      caps: { symlinks: true, modes: 'kept', times: true },
      sourceTree: (rel) => fsTree(join(src, rel)),
    },
    { runs: 50 },
  );
});
