import t from 'tap';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';

// Write-back locations stage new content in the home and copy it into place after close,
// through the same upload queue cloud locations use: durable on fsync/close, resumed after
// a crash, and never overwriting a newer version (conflict copy instead).

async function until(what: string, fn: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  writeFileSync(join(src, 'existing.txt'), 'original\n');
  vdfsOk(home, ['init', '--name', 'stager']);
  vdfsOk(home, ['location', 'add', 'wb', src, '--write-back']);
  vdfsOk(home, ['scan']);
  return { dir, home, src, mnt };
}

t.test('staged writes reach the disk after close, read back meanwhile, and get their hash', async (t) => {
  const { dir, home, src, mnt } = setup(t);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const payload = join(dir, 'payload.bin');
  writeFileSync(payload, randomBytes(3 * 1024 * 1024 + 7));
  t.equal(sh('cp', [payload, join(mnt, 'wb', 'copied.bin')]).code, 0);
  t.equal(sh('b3sum', ['--no-names', join(mnt, 'wb', 'copied.bin')]).stdout.trim(), b3sum(payload), 'reads see the staged bytes at once');
  t.equal(sh('bash', ['-c', `echo more >> ${join(mnt, 'wb', 'existing.txt')}`]).code, 0);
  await until('uploads', () => existsSync(join(src, 'copied.bin')) && readFileSync(join(src, 'existing.txt'), 'utf8') === 'original\nmore\n');
  t.equal(b3sum(join(src, 'copied.bin')), b3sum(payload), 'the disk has exactly the written bytes');
  await until('the hash', () => vdfs(home, ['stat', '/wb/copied.bin', '--json']).json<{ hash: string | null }>().hash === b3sum(payload));
  t.same(readdirSync(join(home, 'staging')), [], 'no staging file left');
  t.equal(vdfsOk(home, ['status', '--json']).json<{ uploads: { pending: number } }>().uploads.pending, 0);
});

t.test('an fsynced staged write survives kill -9 and is uploaded after restart', async (t) => {
  const { dir, home, src, mnt } = setup(t);
  // The disk refuses new files for now (immutable directory): uploads fail and are retried.
  t.equal(sh('chattr', ['+i', src]).code, 0, 'chattr +i (needs root and ext4)');
  t.teardown(() => {
    sh('chattr', ['-i', src]);
  });
  const m1 = await startMount(home, mnt);
  t.teardown(() => m1.stop());
  const payload = join(dir, 'payload.bin');
  writeFileSync(payload, randomBytes(1024 * 1024 + 3));
  const dd = sh('dd', [`if=${payload}`, `of=${join(mnt, 'wb', 'durable.bin')}`, 'bs=64k', 'conv=fsync', 'status=none']);
  t.equal(dd.code, 0, dd.stderr);
  // The real condition: the daemon tried to upload and the disk refused (its log says so).
  await until('a refused upload attempt', () => /upload failed, retrying/.test(m1.output()));
  t.notOk(existsSync(join(src, 'durable.bin')), 'not uploaded yet (the disk refuses it)');
  await m1.kill9();
  t.equal(sh('chattr', ['-i', src]).code, 0);
  const m2 = await startMount(home, mnt);
  t.teardown(() => m2.stop());
  await until('the upload after restart', () => existsSync(join(src, 'durable.bin')) && b3sum(join(src, 'durable.bin')) === b3sum(payload));
  t.equal(sh('b3sum', ['--no-names', join(mnt, 'wb', 'durable.bin')]).stdout.trim(), b3sum(payload), 'and reads back through the mount');
});

t.test('a change at the source while a file is open for writing produces a conflict copy, not an overwrite', async (t) => {
  const { home, src, mnt } = setup(t);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const f = join(mnt, 'wb', 'existing.txt');
  const r = sh('bash', ['-c', `exec 3<>${JSON.stringify(f)}; echo "changed elsewhere" > ${JSON.stringify(join(src, 'existing.txt'))}; echo "ours" >&3; exec 3>&-`]);
  t.equal(r.code, 0, r.stderr);
  let copies: string[] = [];
  // The copy is written under a temporary name and renamed into place: wait for the final name.
  await until('the conflict copy', () => (copies = readdirSync(src).filter((n) => n.includes('(conflict ') && !n.includes('.vdfs-tmp-'))).length === 1);
  t.match(copies[0], /^existing \(conflict \d{4}-\d\d-\d\d stager\)\.txt$/, 'named after the date and the node');
  t.equal(readFileSync(join(src, 'existing.txt'), 'utf8'), 'changed elsewhere\n', 'the newer remote version is kept');
  t.equal(readFileSync(join(src, copies[0]), 'utf8'), 'ours\nnal\n', 'our version is in the copy (ours written over the start of the original)');
  await until('the index', () =>
    vdfs(home, ['ls', '/wb', '--json'])
      .json<{ name: string }[]>()
      .some((e) => e.name === copies[0]),
  );
});
