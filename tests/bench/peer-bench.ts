// In `npm run bench` (family `peer`), or standalone: node dist/tests/bench/peer-bench.js [--quick]
// peer.fetch: what a user on node B gets: `dd` through B's FUSE mount of a file of paired node
// A, through B's block pipeline (fetched over mutual TLS, every block verified), checked with
// b3sum; against a plain Node TLS stream of the same file and A's raw /v1/blobs endpoint, interleaved.
// peer.replicate: `vdfs location add NAME peer://A/tree` (snapshot + apply) of N entries.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { vdfs, vdfsOk } from '../helpers/cli';
import { startMount, type RunningMount } from '../helpers/mount';
import { makeNode, pair, startPeerDaemon } from '../helpers/peer';
import { PeerClient } from '../../providers/peer/peer-client';
import { readKeys } from '../../app/keys';
import { dropCaches, mbps, measure, shOk, type BenchOptions, type Result } from './lib';
import { SIZES } from './env';

const SERVER = `
const tls = require('node:tls'); const fs = require('node:fs');
const [key, cert, file] = [fs.readFileSync(process.argv[1]), fs.readFileSync(process.argv[2]), process.argv[3]];
const s = tls.createServer({ key, cert }, (sock) => fs.createReadStream(file, { highWaterMark: 1 << 20 }).pipe(sock));
s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;

async function plainTls(port: number, bytes: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    sock.on('data', (d: Buffer) => (got += d.length));
    sock.on('end', resolve);
    sock.on('error', reject);
  });
  if (got !== bytes) throw new Error(`plain TLS got ${got} of ${bytes}`);
  return mbps(bytes, Number(process.hrtime.bigint() - t0) / 1e9);
}

function generateTree(tree: string, entries: number): void {
  const perDir = 1000;
  for (let d = 0; d * perDir < entries; d++) {
    mkdirSync(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < entries; f++) writeFileSync(join(tree, `d${d}`, `f${f}.txt`), `${d}/${f}\n`);
  }
}

/** peer.fetch and peer.replicate between two real daemons' homes on loopback. */
export async function peerBench(o: BenchOptions): Promise<Result[]> {
  const { peerMiB: mib, peerEntries: entries } = SIZES[o.size];
  const dir = '/tmp/vdfs-peer-bench';
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const a = makeNode(dir, 'alpha', {}, 'big');
  const bytes = mib << 20;
  execFileSync('sh', ['-c', `head -c ${bytes} /dev/urandom > ${join(a.src, 'blob.bin')}`]);
  const tree = join(dir, 'tree');
  o.log(`peer: generating ${entries} files`);
  generateTree(tree, entries);
  vdfsOk(a.home, ['location', 'add', 'tree', tree]);
  vdfsOk(a.home, ['scan']);
  const da = await startPeerDaemon(a.home);
  const srv: { proc?: ReturnType<typeof spawn> } = {};
  let mb: RunningMount | undefined;
  try {
    const b = makeNode(dir, 'beta', {}, 'own');
    pair(a.home, b.home, ['big', 'tree']);
    vdfsOk(b.home, ['location', 'add', 'abig', 'peer://alpha/big']);
    const hash = vdfsOk(b.home, ['stat', '/abig/blob.bin', '--json']).json<{ hash: string }>().hash;
    const pems = await generate([{ name: 'commonName', value: 'bench' }], { keyType: 'ec', algorithm: 'sha256' });
    writeFileSync(join(dir, 'k.pem'), pems.private);
    writeFileSync(join(dir, 'c.pem'), pems.cert);
    srv.proc = spawn(process.execPath, ['-e', SERVER, join(dir, 'k.pem'), join(dir, 'c.pem'), join(a.src, 'blob.bin')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((r) => srv.proc!.stdout!.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
    const keys = readKeys(b.home)!;
    const idA = vdfsOk(a.home, ['peer', 'id']).stdout.trim();
    const mnt = join(dir, 'mnt-b');
    const results: Result[] = [];
    results.push(
      await measure(
        o,
        {
          name: 'peer.fetch',
          unit: 'MB/s',
          better: 'higher',
          cache: 'cold',
          note: `${mib} MiB file of node A read on node B with dd bs=1M through B's FUSE mount (a fresh daemon on B, its block cache emptied first; blocks fetched over mutual TLS and verified; checked with b3sum, untimed) vs a plain Node TLS stream of the same file and A's raw /v1/blobs endpoint, loopback; drop_caches before every target`,
        },
        [
          {
            name: 'vdfs',
            run: async () => {
              // A fresh daemon on B with an empty block cache, as a user opening the file first.
              await mb?.stop();
              vdfsOk(b.home, ['cache', 'clear']);
              dropCaches();
              mb = await startMount(b.home, mnt);
              const file = join(mnt, 'abig', 'blob.bin');
              const r = shOk(`dd if=${file} of=/dev/null bs=1M status=none`, { timeoutMs: 600_000 });
              const got = shOk(`b3sum --no-names ${file}`).stdout.trim(); // untimed: from B's cache now
              if (got !== hash) throw new Error(`the mount on B gave content with hash ${got}, not ${hash}`);
              return mbps(bytes, r.seconds);
            },
          },
          {
            name: 'node-tls',
            run: () => {
              dropCaches();
              return plainTls(port, bytes);
            },
          },
          {
            name: 'peer-endpoint',
            run: async () => {
              dropCaches();
              const c = new PeerClient(da.url, idA, keys);
              const t0 = process.hrtime.bigint();
              let got = 0;
              try {
                const status = await c.stream(`/v1/blobs/${hash}`, (d) => (got += d.length));
                if (status !== 200 || got !== bytes) throw new Error(`raw blob: ${status}, ${got} bytes`);
              } finally {
                c.close();
              }
              return mbps(bytes, Number(process.hrtime.bigint() - t0) / 1e9);
            },
          },
        ],
      ),
    );
    results.push(
      await measure(
        o,
        { name: 'peer.replicate', unit: 's', better: 'lower', cache: 'warm', note: `vdfs location add of a peer location of ${entries + 1} entries (snapshot + apply)` },
        [
          {
            name: 'vdfs',
            run: (rep) => {
              if (rep > 0) vdfsOk(b.home, ['location', 'rm', 'atree']);
              const t0 = process.hrtime.bigint();
              const r = vdfs(b.home, ['location', 'add', 'atree', 'peer://alpha/tree'], { timeoutMs: 600_000 });
              if (r.code !== 0) throw new Error(`vdfs location add atree: ${r.stderr.trim()}`);
              return Number(process.hrtime.bigint() - t0) / 1e9;
            },
          },
        ],
      ),
    );
    return results;
  } finally {
    await mb?.stop();
    srv.proc?.kill();
    await da.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  void peerBench({ size: quick ? 'quick' : 'full', quick, json: true, reps: 3, log: (m) => process.stderr.write(`${m}\n`) })
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
