import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { startDriveServer, type DriveTestServer } from './helpers/drive-server';
import { blake3Hex } from '../cache/checksum';

const MiB = 1 << 20;
interface LsItem {
  name: string;
  type: string;
  size: number;
  hash: string | null;
}

async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** A home with Drive tokens stored the headless way and one location on `folder`. */
function setupHome(t: Test, drive: DriveTestServer, folder: string) {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  vdfsOk(home, ['init', '--name', 'gdrive-test']);
  const a = vdfsOk(home, [
    'auth',
    'gdrive',
    '--access-token',
    drive.token,
    '--refresh-token',
    drive.refreshToken,
    '--token-url',
    `${drive.root}token`,
    '--client-id',
    'test-client',
  ]);
  t.match(a.stdout, /authorised/);
  t.equal(statSync(join(home, 'gdrive', 'token.json')).mode & 0o777, 0o600, 'tokens are stored at 0600');
  vdfsOk(home, ['location', 'add', 'cloud', `gdrive://${folder}?root=${encodeURIComponent(drive.root)}`]);
  return { dir, home, mnt: join(dir, 'mnt') };
}

t.test('a Drive folder is indexed, read byte-exact through the mount, follows remote changes, takes writes back, and never overwrites a concurrent change', async (t) => {
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const folder = await drive.mkdir('photos');
  const files: Record<string, Buffer> = {
    'a.txt': Buffer.from('hello drive\n'),
    empty: Buffer.alloc(0),
    'dir/three.bin': randomBytes(3 * MiB + 17),
    'dir/sub/deep.txt': Buffer.from('deep'),
  };
  for (const [rel, data] of Object.entries(files)) await drive.put(rel, data, { base: folder });
  await drive.mkdir('emptydir', folder);
  await drive.put('same.txt', 'first', { base: folder });
  const dupId = await drive.put('same.txt', 'second', { base: folder, dup: true });
  await drive.doc('Report', { base: folder });
  const outside = await drive.put('elsewhere/target.txt', 'via shortcut');
  await drive.shortcut('link.txt', outside, folder);
  const { dir, home, mnt } = setupHome(t, drive, folder);

  const s = vdfsOk(home, ['scan', 'cloud', '--json']).json<{ files: number; hashed: number }>();
  t.equal(s.hashed, 0, 'nothing downloaded by a scan');
  const root = vdfsOk(home, ['ls', '/cloud', '--json']).json<LsItem[]>();
  const names = root.map((e) => e.name).sort();
  t.ok(names.includes('same.txt') && names.includes(`same [gd-${dupId}].txt`), 'duplicate names are made unique with the id', { names });
  t.ok(names.includes('Report.docx'), 'a Google Doc appears as its export');
  t.ok(names.includes('link.txt'), 'a shortcut appears under its own name');
  t.equal(root.find((e) => e.name === 'emptydir')?.type, 'dir');

  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const orig = tempDir(t, 'vdfs-gd-orig-');
  for (const [rel, data] of Object.entries(files)) {
    const f = join(orig, rel.replace(/\//g, '_'));
    writeFileSync(f, data);
    t.equal(sh('b3sum', ['--no-names', join(mnt, 'cloud', rel)]).stdout.trim(), b3sum(f), `b3sum through the mount: ${rel}`);
  }
  const big = files['dir/three.bin'];
  const part = sh('bash', ['-c', `dd if=${JSON.stringify(join(mnt, 'cloud/dir/three.bin'))} bs=4096 skip=300 count=5 status=none | b3sum --no-names`]);
  writeFileSync(join(orig, 'dd'), big.subarray(300 * 4096, 305 * 4096));
  t.equal(part.stdout.trim(), b3sum(join(orig, 'dd')), 'a ranged read through the mount is byte-exact');
  t.equal(sh('cat', [join(mnt, 'cloud', 'link.txt')]).stdout, 'via shortcut', 'a shortcut reads its target');
  t.match(sh('cat', [join(mnt, 'cloud', 'Report.docx')]).stdout, /^DOCX export of Report/, 'a Doc reads as its export');
  t.equal(sh('cat', [join(mnt, 'cloud', `same [gd-${dupId}].txt`)]).stdout, 'second', 'the duplicate reads its own content');

  // Remote changes are picked up by the next scan.
  await drive.put('a.txt', 'changed on drive\n', { base: folder });
  await drive.put('new.txt', 'new on drive', { base: folder });
  await drive.trash('empty', folder);
  await drive.counts(true);
  vdfsOk(home, ['scan', 'cloud']);
  const inc = await drive.counts(true);
  t.ok((inc['GET /drive/v3/changes'] ?? 0) >= 1, 'the rescan asks changes.list', { inc });
  t.equal(inc['GET /drive/v3/files'], 1, 'and lists only the one folder that changed', { inc });
  vdfsOk(home, ['scan', 'cloud']);
  t.equal((await drive.counts(true))['GET /drive/v3/files'] ?? 0, 0, 'a rescan with no change lists nothing');
  const after = vdfsOk(home, ['ls', '/cloud', '--json'])
    .json<LsItem[]>()
    .map((e) => e.name);
  t.ok(after.includes('new.txt') && !after.includes('empty'), 'added and trashed files are seen', { after });
  t.equal(vdfsOk(home, ['cat', '/cloud/a.txt']).stdout, 'changed on drive\n', 'the changed content is read');

  // A written file goes up with a resumable upload (in 8 MiB chunks: 2 here).
  vdfsOk(home, ['config', 'set', 'upload.delay', '0']);
  const payload = join(dir, 'payload.bin');
  writeFileSync(payload, randomBytes(9 * MiB + 11));
  await drive.counts(true);
  t.equal(sh('cp', [payload, join(mnt, 'cloud', 'photo.bin')]).code, 0, 'cp into the mount');
  const remote = async (name: string) => {
    const f = await drive.get({ path: name, base: folder });
    return f?.data ? Buffer.from(f.data, 'base64') : undefined;
  };
  await until('the upload', async () => blake3Hex((await remote('photo.bin')) ?? Buffer.alloc(1)) === b3sum(payload), 30_000);
  const counts = await drive.counts();
  t.ok((counts['PUT /upload/drive/v3/files'] ?? 0) >= 2, 'uploaded in resumable chunks', { counts });

  t.equal(sh('mkdir', [join(mnt, 'cloud', 'album')]).code, 0, 'mkdir');
  t.equal(sh('mv', [join(mnt, 'cloud', 'photo.bin'), join(mnt, 'cloud', 'album', 'photo.bin')]).code, 0, 'mv');
  await until('the move', async () => !!(await remote('album/photo.bin')) && !(await remote('photo.bin')));
  t.equal(sh('rm', [join(mnt, 'cloud', 'album', 'photo.bin')]).code, 0, 'rm');
  t.notOk(await remote('album/photo.bin'), 'removed (moved to the trash)');

  // Open for writing, change the file on Drive meanwhile, then write and close: a conflict copy.
  const f = join(mnt, 'cloud', 'dir', 'sub', 'deep.txt');
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
  await drive.put('dir/sub/deep.txt', 'changed remotely\n', { base: folder });
  writeFileSync(go, '');
  t.equal(await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 20_000))]), 0, 'the writer closed its file');
  let copies: string[] = [];
  await until('the conflict copy', async () => {
    copies = (await drive.children({ path: 'dir/sub', base: folder })).map((c) => c.name).filter((n) => /conflict/.test(n));
    return copies.length === 1;
  });
  t.equal((await remote('dir/sub/deep.txt'))?.toString(), 'changed remotely\n', 'the remote change is not overwritten');
  t.equal((await remote(`dir/sub/${copies[0]}`))?.toString(), 'ours\n', `our bytes are in ${copies[0]}`);
});

t.test('rate limits are retried; a revoked authorisation names vdfs auth gdrive', async (t) => {
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const folder = await drive.mkdir('f');
  await drive.put('a.txt', 'abc', { base: folder });
  const { home } = setupHome(t, drive, folder);
  await drive.fault(403, 'userRateLimitExceeded', 2);
  await drive.fault(429, 'rateLimitExceeded', 1);
  await drive.fault(503, 'backendError', 1);
  const s = vdfs(home, ['scan', 'cloud', '--json']);
  t.equal(s.code, 0, 'scan succeeds through 403 rate limits, 429 and 503', { stderr: s.stderr });
  t.equal(vdfsOk(home, ['cat', '/cloud/a.txt']).stdout, 'abc');
  await drive.fault(503, 'backendError', 1000);
  const t0 = Date.now();
  const failed = vdfs(home, ['scan', 'cloud']);
  t.not(failed.code, 0, 'a server that keeps failing fails the scan');
  t.match(failed.stderr, /still failing after \d+ attempts/, 'saying how often it tried', { stderr: failed.stderr });
  t.ok(Date.now() - t0 < 20_000, 'within the bounded wait');
  const drive2 = await startDriveServer();
  t.teardown(() => drive2.stop());
  const folder2 = await drive2.mkdir('g');
  const { home: home2 } = setupHome(t, drive2, folder2);
  vdfsOk(home2, ['scan', 'cloud']);
  await drive2.revoke();
  const r = vdfs(home2, ['scan', 'cloud']);
  t.not(r.code, 0, 'a revoked token fails');
  t.match(r.stderr, /vdfs auth gdrive/, 'naming the command that fixes it', { stderr: r.stderr });
});

t.test("the daemon polls a Drive location through its change feed every scan.driveInterval, not at the listing interval S3's polls use", async (t) => {
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const folder = await drive.mkdir('polled');
  await drive.put('first.txt', 'one', { base: folder });
  const { home, mnt } = setupHome(t, drive, folder);
  vdfsOk(home, ['scan', 'cloud']);
  // A provider without a change feed would be polled every scan.remoteInterval: an hour here.
  vdfsOk(home, ['config', 'set', 'scan.remoteInterval', '3600']);
  vdfsOk(home, ['config', 'set', 'scan.driveInterval', '1']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  await drive.counts(true);
  await drive.put('second.txt', 'two', { base: folder });
  const listed = () =>
    vdfsOk(home, ['ls', '/cloud', '--json'])
      .json<LsItem[]>()
      .some((e) => e.name === 'second.txt');
  await until('the poll to index the new file', listed, 15_000);
  t.ok(listed(), 'a file added on Drive is indexed by the daemon within seconds, with no vdfs scan');
  t.ok(((await drive.counts(true))['GET /drive/v3/changes'] ?? 0) >= 1, 'the poll asked changes.list');
});
