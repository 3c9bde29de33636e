import t, { type Test } from 'tap';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { startS3Server } from './helpers/s3-server';
import { fsTree, vfsTree } from './helpers/vfs-model';
import { openVfsInProcess } from './helpers/vfs-in-process';

// rename(2) refuses a name moved onto one of its own ancestors (ENOTEMPTY: the ancestor holds
// it) before it looks at types, and a directory moved inside itself (EINVAL). Every writer
// (local, write-back, cloud) must answer what the disk answers: the expected code is taken
// from the real rename on a plain folder holding the same tree.
const DIRS = ['d2', 'd2/sub', 'e', 'e/x', 'e/x/y'];
const FILES = ['d2/z', 'd2/sub/f'];
const CASES: [string, string][] = [
  ['d2/z', 'd2'], // a file onto its parent
  ['d2/sub/f', 'd2'], // a file onto its grandparent
  ['d2/sub', 'd2'], // a directory onto its parent
  ['e/x/y', 'e'], // a directory onto its grandparent
  ['d2', 'd2/sub'], // a directory into itself
  ['d2/z', 'd2/sub'], // a file onto a non-empty directory that is not its ancestor
];

function diskCode(root: string, from: string, to: string): string {
  try {
    renameSync(join(root, from), join(root, to));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unknown';
  }
  throw new Error(`the disk renamed ${from} onto ${to}: the case is wrong`);
}

async function check(t: Test, home: string, loc: string): Promise<void> {
  const { vfs } = await openVfsInProcess(t, home);
  const disk = join(tempDir(t), 'disk');
  mkdirSync(disk);
  for (const d of DIRS) {
    mkdirSync(join(disk, d));
    await vfs.mkdir(`/${loc}/${d}`);
  }
  for (const f of FILES) {
    writeFileSync(join(disk, f), f);
    const fh = await vfs.open(`/${loc}/${f}`, { write: true, create: true });
    await vfs.write(fh, 0, Buffer.from(f));
    await vfs.release(fh);
  }
  for (const [from, to] of CASES) {
    const code = diskCode(disk, from, to);
    await t.rejects(vfs.rename(`/${loc}/${from}`, `/${loc}/${to}`), { code }, `${from} -> ${to}: ${code}, as on the disk`);
  }
  t.same(await vfsTree(vfs, `/${loc}`), await fsTree(disk), 'nothing moved');
}

t.test('rename onto an ancestor: local location answers as the disk', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  mkdirSync(join(dir, 'src'));
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'm', join(dir, 'src')]);
  vdfsOk(home, ['scan']);
  await check(t, home, 'm');
});

t.test('rename onto an ancestor: write-back location answers as the disk', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  mkdirSync(join(dir, 'src'));
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'wb', join(dir, 'src'), '--write-back']);
  vdfsOk(home, ['scan']);
  await check(t, home, 'wb');
});

t.test('rename onto an ancestor: S3 location answers as the disk', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const home = join(tempDir(t), 'home');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/w')]);
  vdfsOk(home, ['scan', 'cloud']);
  await check(t, home, 'cloud');
});
