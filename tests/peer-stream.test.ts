import t from 'tap';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { b3sum, tempDir, vdfsOk } from './helpers/cli';
import { startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon, waitFor } from './helpers/peer';

// Peer content through the streamed read pipeline (#17), real peer daemons.

/** A loopback port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test("a peer's file read through B's mount in 128 KiB reads is byte-exact (b3sum), with a dead address listed first", async (t) => {
  const dir = tempDir(t);
  const big = randomBytes(12 * 1024 * 1024 + 999);
  const a = makeNode(dir, 'alpha', { 'big.bin': big });
  const b = makeNode(dir, 'beta');
  const da = await startPeerDaemon(a.home, { logLevel: 'debug' });
  t.teardown(() => da.stop());
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  // A node reachable at two addresses, the first of which no longer answers (a laptop that moved).
  const db = new Database(join(b.home, 'index.db'));
  const dead = `https://127.0.0.1:${await deadPort()}`;
  db.prepare('UPDATE nodes SET addresses = ? WHERE is_self = 0').run(JSON.stringify([dead, da.url]));
  db.close();
  t.same(vdfsOk(b.home, ['peer', 'ls', '--json']).json<{ addresses: string[] }[]>()[0].addresses, [dead, da.url], 'B knows two addresses of A, the dead one first');

  const mnt = join(dir, 'mnt');
  const m = await startMount(b.home, mnt);
  t.teardown(() => m.stop());
  const fd = openSync(join(mnt, 'adocs', 'big.bin'), 'r');
  const got = Buffer.alloc(big.length);
  let pos = 0;
  try {
    for (;;) {
      const n = readSync(fd, got, pos, Math.min(128 * 1024, big.length - pos), pos);
      if (n === 0) break;
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  t.equal(pos, big.length, 'every byte read');
  writeFileSync(join(dir, 'got'), got);
  t.equal(b3sum(join(dir, 'got')), b3sum(join(a.src, 'big.bin')), 'b3sum of the bytes read = b3sum of the file on A');
  await waitFor(() => /blob served/.test(da.output()), 3000);
  const served = da.output().split('blob served').length - 1;
  t.ok(served > 0 && served < 13, `A answered ${served} blob requests for 13 blocks (streamed windows, not one request per block)`);
});
