import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { makeNode, pair, startPeerDaemon } from './helpers/peer';
import { runModel, startVfsDaemon } from './helpers/vfs-model';

// The Vfs of node B over a location owned by node A (a real `vdfs serve --peer` process).
// A peer location is read-only: every change through B's Vfs must be refused with EROFS; the
// same change is then made on A's disk, and B's Vfs must come to show exactly the oracle's
// tree (listings, sizes, every byte fetched from A by hash and verified, modes, the index's
// BLAKE3 of every file) before the next operation.
t.test('vfs model, peer location: read-only through the Vfs, and it follows the owner exactly', async (t) => {
  const dir = tempDir(t);
  const oracle = join(dir, 'oracle');
  mkdirSync(oracle);
  const a = makeNode(dir, 'alpha');
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  const b = makeNode(dir, 'beta');
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const { daemon } = await startVfsDaemon(t, b.home);
  await runModel(
    t,
    oracle,
    {
      vfs: daemon.vfs,
      loc: '/adocs',
      ownerDir: a.src,
      caps: { symlinks: true, modes: 'kept', times: true },
    },
    { runs: 6, minOps: 6, maxOps: 16 },
  );
});
