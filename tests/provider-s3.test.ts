import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Provider } from '../providers/s3/s3-provider';
import { providerConformance } from './helpers/provider-conformance';
import { startS3Server } from './helpers/s3-server';

// Every subtest gets its own server and prefix; the prefix proves keys never escape it.
providerConformance(t, 's3', async ({ readonly }) => {
  const s3 = await startS3Server();
  await s3.put('outside-the-prefix.txt', 'not part of the location');
  const provider = new S3Provider({ bucket: s3.bucket, prefix: 'loc/', endpoint: s3.endpoint, region: 'us-east-1' }, { readonly, retry: { budgetMs: 1500 } });
  return {
    provider,
    async seed(files) {
      for (const [rel, item] of Object.entries(files)) {
        if (typeof item === 'object' && 'dir' in item) await s3.put(`loc/${rel}/`, '');
        else if (typeof item === 'object' && 'symlink' in item) throw new Error('S3 has no symlinks');
        else await s3.put(`loc/${rel}`, item);
      }
    },
    unreachable: () => s3.stop(),
    async cleanup() {
      await provider.close();
      await s3.cleanup();
    },
  };
});

t.test('s3: putFile never overwrites a version it was not based on (ESTALE)', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const p = new S3Provider({ bucket: s3.bucket, prefix: '', endpoint: s3.endpoint, region: 'us-east-1' });
  t.teardown(() => p.close());
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-s3-put-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const src = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const body = async (key: string) => (await p.readRange(key, 0, 1000)).toString();
  const code = async (fn: () => Promise<unknown>) =>
    fn().then(
      () => 'ok',
      (err: { code?: string }) => err.code,
    );

  const v1 = (await p.putFile('f.txt', src('a', 'one'))).version;
  await s3.put('f.txt', 'changed behind our back');
  t.equal(await code(() => p.putFile('f.txt', src('b', 'two'), { ifVersion: v1 })), 'ESTALE', 'a stale version is refused');
  t.equal(await body('f.txt'), 'changed behind our back', 'and nothing was overwritten');
  const v2 = (await p.stat('f.txt')).version;
  const put = await p.putFile('f.txt', src('c', 'three'), { ifVersion: v2 });
  t.not(put.version, v2, 'the current version is replaced');
  t.equal(await body('f.txt'), 'three');
  t.equal(await code(() => p.putFile('f.txt', src('d', 'x'), { ifVersion: null })), 'ESTALE', 'create-only onto an existing object');
  t.equal(await code(() => p.putFile('gone.txt', src('e', 'x'), { ifVersion: v2 })), 'ESTALE', 'a version given for a missing object');
  t.equal(await code(() => p.putFile('new.txt', src('f', 'new'), { ifVersion: null })), 'ok', 'create-only where nothing is');
  t.equal(await body('new.txt'), 'new');
  // Large files go up in parts and read back exact.
  const big = Buffer.alloc(17 * 1024 * 1024 + 3, 7);
  big[12345] = 1;
  const bf = join(dir, 'big');
  writeFileSync(bf, big);
  const e = await p.putFile('big.bin', bf);
  t.equal(e.size, big.length);
  t.ok((await p.readRange('big.bin', 0, big.length)).equals(big), 'a multipart upload round-trips');
});
