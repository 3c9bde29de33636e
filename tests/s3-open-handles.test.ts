import t from 'tap';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { tempDir, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { startS3Server, type S3TestServer } from './helpers/s3-server';

async function keys(s3: S3TestServer): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'w/' }));
  return (r.Contents ?? []).map((c) => c.Key!).sort();
}

async function body(s3: S3TestServer, key: string): Promise<string | undefined> {
  try {
    const r = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray()).toString();
  } catch {
    return undefined;
  }
}

// Files open for writing in a bucket, renamed, replaced or deleted before they are closed:
// as on a disk, the open file follows its rename, and one replaced or deleted takes its later
// writes nowhere (its close used to commit them at the name: the deleted file came back, the
// replaced one overwrote the file moved over it).
const SCRIPT = `
import os, sys
os.chdir(sys.argv[1])
a = open('open-a', 'wb'); a.write(b'first '); a.flush(); os.fsync(a.fileno())
os.rename('open-a', 'open-c')
a.write(b'second'); a.close()
v = open('victim', 'wb'); v.write(b'victim'); v.flush(); os.fsync(v.fileno())
with open('winner', 'wb') as w: w.write(b'winner')
os.rename('winner', 'victim')
v.write(b' more'); v.close()
g = open('gone', 'wb'); g.write(b'x'); g.flush(); os.fsync(g.fileno())
os.unlink('gone')
g.write(b'y'); g.close()
print('done')
`;

t.test('S3: an open file follows its rename; one replaced or deleted while open does not come back', async (t) => {
  const s3 = await startS3Server('vdfs-test', 0);
  t.teardown(() => s3.cleanup());
  await s3.put('w/keep.txt', 'keep\n');
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '0']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/w')]);
  vdfsOk(home, ['scan', 'cloud']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const root = join(mnt, 'cloud');
  const r = sh('python3', ['-c', SCRIPT, root]);
  t.equal(r.stdout.trim(), 'done', `the writer ran: ${r.stderr}`);
  const want = { 'open-c': 'first second', victim: 'winner' };
  const names = () => sh('ls', [root]).stdout.split('\n').filter(Boolean).sort();
  t.same(names(), ['keep.txt', 'open-c', 'victim'], 'the mount: the moved file at its new name only, no deleted file');
  for (const [n, text] of Object.entries(want)) t.equal(sh('cat', [join(root, n)]).stdout, text, `${n} through the mount`);
  const deadline = Date.now() + 30_000;
  const settled = async () =>
    JSON.stringify(await keys(s3)) === JSON.stringify(['w/keep.txt', 'w/open-c', 'w/victim']) &&
    (await body(s3, 'w/open-c')) === want['open-c'] &&
    (await body(s3, 'w/victim')) === want.victim;
  while (!(await settled()) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
  t.same(await keys(s3), ['w/keep.txt', 'w/open-c', 'w/victim'], 'the bucket: the same names');
  t.equal(await body(s3, 'w/open-c'), want['open-c'], 'open-c in the bucket: both writes');
  t.equal(await body(s3, 'w/victim'), want.victim, "victim in the bucket: the file moved over it, not the replaced file's later writes");
  // And after a while, nothing changes back (a late upload of a detached copy).
  await new Promise((res) => setTimeout(res, 3000));
  t.same(
    [await keys(s3), names()],
    [
      ['w/keep.txt', 'w/open-c', 'w/victim'],
      ['keep.txt', 'open-c', 'victim'],
    ],
    'still so 3 s later',
  );
});
