import t from 'tap';
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
    async cleanup() { await provider.close(); await s3.cleanup(); },
  };
});
