import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { FOLDER, startDriveServer, type DriveTestServer } from './helpers/drive-server';
import { runModel, startVfsDaemon, uploadsSettled } from './helpers/vfs-model';
import { blake3Hex } from '../cache/checksum';

/** The Drive folder's own tree, read from the test server behind vdfs's back, in fsTree()'s format. */
async function driveTree(drive: DriveTestServer, id: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const f of (await drive.children({ id })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = rel ? `${rel}/${f.name}` : f.name;
    if (f.mimeType === FOLDER) out.push(`${p}/`, ...(await driveTree(drive, f.id, p)));
    else {
      const b = Buffer.from(f.data ?? '', 'base64');
      out.push(`${p} ${b.length} ${blake3Hex(b)}`);
    }
  }
  return out;
}

// The Vfs over a Drive folder on the loopback Drive server: writes are staged and uploaded;
// once the queue is empty the Drive folder itself must hold exactly the oracle's tree.
t.test('vfs model, Google Drive location: staged writes behave like a real directory and land in the Drive folder', async (t) => {
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const folder = await drive.mkdir('model');
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const oracle = join(dir, 'oracle');
  mkdirSync(oracle);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '0']);
  vdfsOk(home, ['auth', 'gdrive', '--access-token', drive.token, '--refresh-token', drive.refreshToken, '--token-url', `${drive.root}token`, '--client-id', 'test-client']);
  vdfsOk(home, ['location', 'add', 'cloud', `gdrive://${folder}?root=${encodeURIComponent(drive.root)}`]);
  vdfsOk(home, ['scan', 'cloud']);
  const { daemon } = await startVfsDaemon(t, home);
  const queue = daemon.vfs.staged.queue;
  await runModel(
    t,
    oracle,
    {
      vfs: daemon.vfs,
      loc: '/cloud',
      caps: { symlinks: false, modes: 'kept', times: true },
      async sourceTree(rel) {
        await uploadsSettled(t, queue);
        const runDir = (await drive.children({ id: folder })).find((f) => f.name === rel && f.mimeType === FOLDER);
        if (!runDir) throw new Error(`no folder ${rel} in the Drive folder`);
        return driveTree(drive, runDir.id);
      },
    },
    { runs: 20 },
  );
});
