import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { startS3Server, type S3TestServer } from './helpers/s3-server';
import { blake3Hex } from '../cache/checksum';

async function getObject(s3: S3TestServer, key: string): Promise<Buffer | undefined> {
  try {
    const r = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } catch {
    return undefined;
  }
}

async function keys(s3: S3TestServer, prefix: string): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((c) => c.Key!).sort();
}

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

t.test('files copied into an S3 location reach the bucket; mkdir, mv and rm act on it; a concurrent remote change becomes a conflict copy', async (t) => {
  const s3 = await startS3Server('vdfs-test', 0);
  t.teardown(() => s3.cleanup());
  await s3.put('w/existing.txt', 'original\n');
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  vdfsOk(home, ['init', '--name', 'writer']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '0']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/w')]);
  vdfsOk(home, ['scan', 'cloud']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());

  const payload = join(dir, 'payload.bin');
  writeFileSync(payload, randomBytes(5 * 1024 * 1024 + 11));
  t.equal(sh('cp', [payload, join(mnt, 'cloud', 'photo.bin')]).code, 0, 'cp into the mount');
  t.equal(sh('b3sum', ['--no-names', join(mnt, 'cloud', 'photo.bin')]).stdout.trim(), b3sum(payload), 'reads back at once (staged)');
  await until('the upload', async () => blake3Hex((await getObject(s3, 'w/photo.bin')) ?? Buffer.alloc(1)) === b3sum(payload));
  await until('the hash in the index', () => vdfs(home, ['stat', '/cloud/photo.bin', '--json']).json<{ hash: string | null }>().hash === b3sum(payload));

  t.equal(sh('mkdir', [join(mnt, 'cloud', 'album')]).code, 0, 'mkdir');
  t.equal(sh('mv', [join(mnt, 'cloud', 'photo.bin'), join(mnt, 'cloud', 'album', 'photo.bin')]).code, 0, 'mv within the bucket');
  await until('the move', async () => (await keys(s3, 'w/')).includes('w/album/photo.bin') && !(await keys(s3, 'w/')).includes('w/photo.bin'));
  t.equal(blake3Hex((await getObject(s3, 'w/album/photo.bin'))!), b3sum(payload), 'moved object intact');
  t.equal(sh('rm', [join(mnt, 'cloud', 'album', 'photo.bin')]).code, 0, 'rm');
  t.notOk((await keys(s3, 'w/')).includes('w/album/photo.bin'), 'deleted from the bucket');
  t.match(sh('ln', ['-s', 'x', join(mnt, 'cloud', 'link')]).stderr, /Operation not permitted/, "symlinks: EPERM, symlink(2)'s answer where the filesystem has none");
  // What docs/vfs.md's table says a bucket refuses: hard links (EPERM), owners (EPERM).
  const kept = join(mnt, 'cloud', 'album', 'kept.txt');
  writeFileSync(kept, 'k');
  t.match(sh('ln', [kept, join(mnt, 'cloud', 'album', 'hard')]).stderr, /Operation not permitted/, 'hard links: EPERM');
  t.match(sh('chown', ['12345', kept]).stderr, /Operation not permitted/, 'chown to another user: EPERM');
  t.equal(sh('touch', ['-m', '-d', '@1500000000.5', kept]).code, 0, 'touch -m');

  // Open for writing, change the object behind vdfs's back, then write and close.
  const f = join(mnt, 'cloud', 'existing.txt');
  const ready = join(dir, 'ready');
  const go = join(dir, 'go');
  const child = spawn('bash', [
    '-c',
    `exec 3<>${JSON.stringify(f)}; touch ${JSON.stringify(ready)}; while [ ! -e ${JSON.stringify(go)} ]; do sleep 0.05; done; echo ours >&3; exec 3>&-`,
  ]);
  const exited = new Promise<number | null>((res) => child.on('exit', res));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await until('the writer to open the file', () => existsSync(ready));
  await s3.put('w/existing.txt', 'changed remotely\n');
  writeFileSync(go, '');
  t.equal(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 20_000))]), 0, 'the writer closed its file');
  let copies: string[] = [];
  await until('the conflict copy', async () => (copies = (await keys(s3, 'w/')).filter((k) => k.includes('(conflict '))).length === 1);
  t.match(copies[0], /^w\/existing \(conflict \d{4}-\d\d-\d\d writer\)\.txt$/, 'named after the date and the node');
  t.equal((await getObject(s3, 'w/existing.txt'))?.toString(), 'changed remotely\n', 'the remote change is not overwritten');
  t.equal((await getObject(s3, copies[0]))?.toString(), 'ours\nnal\n', 'our version is kept in the copy');
  await until('the copy in the index', () =>
    vdfs(home, ['ls', '/cloud', '--json'])
      .json<{ name: string }[]>()
      .some((e) => e.name === copies[0].slice(2)),
  );
});

t.test('touch and chmod right after a write survive its upload (S3 keeps neither: the index does)', async (t) => {
  const s3 = await startS3Server('vdfs-test', 0);
  t.teardown(() => s3.cleanup());
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  vdfsOk(home, ['init', '--name', 'writer']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '1']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/t')]);
  vdfsOk(home, ['scan', 'cloud']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const f = join(mnt, 'cloud', 'note.txt');
  // What cp -p and rsync -a do: write, close, then set the times and the mode.
  const r = sh('sh', ['-c', 'echo hello > "$1" && touch -m -d @1500000000.123456789 "$1" && chmod 600 "$1"', 'sh', f]);
  t.equal(r.code, 0, r.stderr);
  t.equal(sh('stat', ['-c', '%.9Y %a', f]).stdout.trim(), '1500000000.123456789 600', 'before the upload');
  await until('the upload', async () => (await getObject(s3, 't/note.txt'))?.toString() === 'hello\n');
  await until('the hash in the index', () => vdfs(home, ['stat', '/cloud/note.txt', '--json']).json<{ hash: string | null }>().hash !== null);
  t.equal(vdfs(home, ['stat', '/cloud/note.txt', '--json']).json<{ mtime: string }>().mtime, '2017-07-14T02:40:00.123Z', 'the index kept the time set after the write');
  t.equal(sh('stat', ['-c', '%.9Y %a', f]).stdout.trim(), '1500000000.123456789 600', 'after the upload: the time (to the nanosecond) and the mode set after the write');
  // And a touch while nothing is pending is kept too.
  t.equal(sh('touch', ['-m', '-d', '@1600000000', f]).code, 0);
  t.equal(sh('stat', ['-c', '%Y', f]).stdout.trim(), '1600000000');
  // cp -p sets the times on the open copy, before closing it: they survive the close and the upload.
  const orig = join(dir, 'orig.txt');
  writeFileSync(orig, 'kept times\n');
  sh('touch', ['-m', '-d', '@1400000000.5', orig]);
  const copy = join(mnt, 'cloud', 'copy.txt');
  t.equal(sh('cp', ['-p', orig, copy]).code, 0);
  t.equal(sh('stat', ['-c', '%.9Y', copy]).stdout.trim(), '1400000000.500000000', 'cp -p: the source time at once');
  await until('the second upload', async () => (await getObject(s3, 't/copy.txt'))?.toString() === 'kept times\n');
  await until('its hash in the index', () => vdfs(home, ['stat', '/cloud/copy.txt', '--json']).json<{ hash: string | null }>().hash !== null);
  t.equal(sh('stat', ['-c', '%.9Y', copy]).stdout.trim(), '1400000000.500000000', 'cp -p: and after the upload');
  // A time set while another descriptor still has the file open for writing (a close whose
  // RELEASE the kernel has not sent yet) is shown to the nanosecond too.
  const held = sh('sh', ['-c', 'exec 3>>"$1"; touch -m -d @1500000001.987654321 "$1" && stat -c %.9Y "$1"', 'sh', copy]);
  t.equal(held.stdout.trim(), '1500000001.987654321', 'a time set while open for writing');
});
