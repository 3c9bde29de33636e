import t from 'tap';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { LocalProvider } from '../providers/local/local-provider';
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
      caps: { symlinks: true, modes: 'kept', times: true },
      async sourceTree(rel) {
        await uploadsSettled(t, queue);
        return fsTree(join(src, rel));
      },
    },
    { runs: 25 },
  );
});

// cp -p, rsync -a and tar set the mode and times after the last write, while only the staged
// copy exists (they answered ENOENT): the index keeps them, and the upload places the file with
// them, to the nanosecond (rsync compares nanoseconds).
t.test('write-back: chmod and utimens of a file still only staged reach the folder with its upload', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  mkdirSync(src);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '1']);
  vdfsOk(home, ['location', 'add', 'wb', src, '--write-back']);
  vdfsOk(home, ['scan']);
  const { daemon } = await startVfsDaemon(t, home);
  const vfs = daemon.vfs;
  const fh = await vfs.open('/wb/f.txt', { write: true, create: true, mode: 0o644 });
  await vfs.write(fh, 0, Buffer.from('staged bytes\n'));
  await vfs.release(fh);
  t.notOk(existsSync(join(src, 'f.txt')), 'only staged so far (upload.delay 1 s)');
  await vfs.chmod('/wb/f.txt', 0o640);
  await vfs.setTimes('/wb/f.txt', 'omit', { sec: 1_500_000_000, nsec: 123_456_789 });
  const a = await vfs.getattr('/wb/f.txt');
  t.same([a.mode & 0o7777, Math.floor(a.mtimeMs)], [0o640, 1_500_000_000_123], 'the mount shows them at once');
  await uploadsSettled(t, daemon.vfs.staged.queue);
  const st = statSync(join(src, 'f.txt'), { bigint: true });
  t.same([Number(st.mode) & 0o7777, String(st.mtimeNs)], [0o640, '1500000000123456789'], 'the placed file has the mode and the exact mtime');
  const b = await vfs.getattr('/wb/f.txt');
  t.same([b.mode & 0o7777, Math.floor(b.mtimeMs)], [0o640, 1_500_000_000_123], 'and the index still shows them after the upload');
});

// The same while the upload runs: the change arrives after the upload's put has placed the
// file and before the queue records it (the real LocalProvider's put, with the test's change
// run right after it). The change went to the index only, and the upload's end then took the
// disk's old mode back (CI: the model test saw `stat b` answer 644 after a chmod 600).
t.test('write-back: chmod and utimens racing the upload of a staged file are neither lost nor undone', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  mkdirSync(src);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '0']);
  vdfsOk(home, ['location', 'add', 'wb', src, '--write-back']);
  vdfsOk(home, ['scan']);
  const { daemon } = await startVfsDaemon(t, home);
  const vfs = daemon.vfs;
  const duringPut = new Map<string, () => Promise<void>>();
  const put = LocalProvider.prototype.putFile;
  LocalProvider.prototype.putFile = async function (this: LocalProvider, ...args: Parameters<LocalProvider['putFile']>) {
    const placed = await put.apply(this, args);
    const change = duringPut.get(args[0]);
    duringPut.delete(args[0]);
    await change?.();
    return placed;
  };
  t.teardown(() => {
    LocalProvider.prototype.putFile = put;
  });
  const cases = [
    { name: 'chmod', mode: 0o600, sec: undefined },
    { name: 'touch', mode: 0o644, sec: 1_400_000_000 },
    { name: 'both', mode: 0o640, sec: 1_400_000_001 },
  ];
  for (const c of cases) {
    duringPut.set(c.name, async () => {
      if (c.mode !== 0o644) await vfs.chmod(`/wb/${c.name}`, c.mode);
      if (c.sec !== undefined) await vfs.setTimes(`/wb/${c.name}`, 'omit', { sec: c.sec, nsec: 0 });
    });
    const fh = await vfs.open(`/wb/${c.name}`, { write: true, create: true, truncate: true, mode: 0o644 });
    await vfs.write(fh, 0, Buffer.from(`${c.name}\n`));
    await vfs.release(fh);
  }
  await uploadsSettled(t, daemon.vfs.staged.queue);
  t.same([...duringPut.keys()], [], 'each change ran during its put');
  for (const c of cases) {
    const a = await vfs.getattr(`/wb/${c.name}`);
    const st = statSync(join(src, c.name));
    t.equal(a.mode & 0o7777, c.mode, `${c.name}: the mount shows the mode`);
    t.equal(st.mode & 0o7777, c.mode, `${c.name}: the folder's file has it`);
    if (c.sec === undefined) continue;
    t.equal(Math.floor(a.mtimeMs / 1000), c.sec, `${c.name}: the mount shows the mtime`);
    t.equal(Math.floor(st.mtimeMs / 1000), c.sec, `${c.name}: the folder's file has it`);
  }
});
