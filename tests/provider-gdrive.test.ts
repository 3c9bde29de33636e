import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GdriveProvider } from '../providers/gdrive/gdrive-provider';
import { writeTokens } from '../providers/gdrive/gdrive-tokens';
import { parseGdriveUri } from '../providers/gdrive/gdrive-uri';
import { providerConformance } from './helpers/provider-conformance';
import { startDriveServer } from './helpers/drive-server';

// Every subtest gets its own server; the location is a folder below My Drive, and a file
// beside it proves nothing outside the folder is seen.
providerConformance(t, 'gdrive', async ({ readonly }) => {
  const drive = await startDriveServer();
  const home = mkdtempSync(join(tmpdir(), 'vdfs-gdrive-conf-'));
  writeTokens({ access_token: drive.token, refresh_token: drive.refreshToken, client_id: 'test-client', token_url: `${drive.root}token` }, home);
  const folder = await drive.mkdir('loc');
  await drive.put('outside-the-folder.txt', 'not part of the location');
  const provider = new GdriveProvider(parseGdriveUri(`gdrive://${folder}?root=${encodeURIComponent(drive.root)}`), { readonly, retry: { budgetMs: 1500 }, homeDir: home });
  return {
    provider,
    async seed(files) {
      for (const [rel, item] of Object.entries(files)) {
        if (typeof item === 'object' && 'dir' in item) await drive.mkdir(rel, folder);
        else if (typeof item === 'object' && 'symlink' in item) throw new Error('Drive has no symlinks');
        else await drive.put(rel, item, { base: folder });
      }
    },
    unreachable: () => drive.stop(),
    async cleanup() {
      await provider.close();
      await drive.stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
});
