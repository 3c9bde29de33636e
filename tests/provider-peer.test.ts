import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Home } from '../app/home';
import { blake3Hex } from '../cache/checksum';
import type { PeerProvider } from '../providers/peer/peer-provider';
import { openProvider } from '../app/provider-registry';
import { vdfsOk } from './helpers/cli';
import { makeNode, pair, startPeerDaemon } from './helpers/peer';
import { providerConformance, type SeedItem } from './helpers/provider-conformance';
import { pollUntil } from './helpers/vfs-model';

// The peer provider through the shared suite. Every subtest gets two real nodes: A (`vdfs serve
// --peer`) owns the location and is seeded on its disk; B (also a real daemon, which replicates
// A's tree into its index) is where the provider runs, over B's index. A peer location is
// read-only (writes: EROFS) and, by design, keeps answering stat and list from the replicated
// tree while A is unreachable (the suite's `offlineTree`); content then fails with EHOSTDOWN.
providerConformance(t, 'peer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-conf-peer-'));
  const a = makeNode(dir, 'alpha');
  const da = await startPeerDaemon(a.home);
  const b = makeNode(dir, 'beta');
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const db = await startPeerDaemon(b.home);
  const home = Home.open(b.home);
  const loc = home.locations.get('adocs');
  // Opened the way the daemon opens it (keys, the owner's addresses and B's replicated tree).
  const provider = openProvider(loc, home) as PeerProvider;
  /** Has B's index caught up with this seeded item (type, and hash or target)? */
  const replicated = async (rel: string, item: SeedItem): Promise<boolean> => {
    const e = await provider.stat(rel);
    if (typeof item === 'object' && 'dir' in item) return e.type === 'dir';
    if (typeof item === 'object' && 'symlink' in item) return e.type === 'symlink' && e.target === item.symlink;
    return e.type === 'file' && e.hash === blake3Hex(Buffer.from(item));
  };
  return {
    provider,
    offlineTree: true,
    async seed(files) {
      for (const [rel, item] of Object.entries(files)) {
        const p = join(a.src, rel);
        mkdirSync(dirname(p), { recursive: true });
        if (typeof item === 'object' && 'dir' in item) mkdirSync(p, { recursive: true });
        else if (typeof item === 'object' && 'symlink' in item) symlinkSync(item.symlink, p);
        else writeFileSync(p, item);
      }
      for (const [rel, item] of Object.entries(files)) {
        if (!(await pollUntil(() => replicated(rel, item), 20_000))) throw new Error(`${rel} did not reach B's index in 20 s`);
      }
    },
    unreachable: () => da.kill9(),
    async cleanup() {
      await provider.close();
      await db.stop();
      await da.stop();
      home.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
