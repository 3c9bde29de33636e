import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { tempDir, vdfsOk } from './helpers/cli';
import { startS3Server, type S3TestServer } from './helpers/s3-server';
import { runModel, startVfsDaemon, uploadsSettled } from './helpers/vfs-model';
import { blake3Hex } from '../cache/checksum';

/** The bucket's own tree below `prefix`, read with the SDK behind vdfs's back, in fsTree()'s format. */
async function bucketTree(s3: S3TestServer, prefix: string): Promise<string[]> {
  const lines = new Map<string, string>();
  let token: string | undefined;
  do {
    const r = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) {
      const rel = o.Key!.slice(prefix.length);
      const parts = rel.split('/');
      for (let i = 1; i < parts.length; i++) lines.set(parts.slice(0, i).join('/'), `${parts.slice(0, i).join('/')}/`);
      if (rel === '' || rel.endsWith('/')) continue;
      const body = Buffer.from(await (await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: o.Key! }))).Body!.transformToByteArray());
      lines.set(rel, `${rel} ${body.length} ${blake3Hex(body)}`);
    }
    token = r.NextContinuationToken;
  } while (token);
  return [...lines.keys()].sort().map((k) => lines.get(k)!);
}

// The Vfs over an S3 prefix on s3rver (signatures checked): writes are staged and uploaded;
// once the queue is empty the bucket itself must hold exactly the oracle's tree.
t.test('vfs model, S3 location: staged writes behave like a real directory and land in the bucket', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const oracle = join(dir, 'oracle');
  mkdirSync(oracle);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['config', 'set', 'upload.delay', '0']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/w')]);
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
        return bucketTree(s3, `w/${rel}/`);
      },
    },
    { runs: 20 },
  );
});
