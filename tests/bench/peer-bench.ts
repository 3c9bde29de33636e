// In `npm run bench` (family `peer`), or standalone:
// node dist/tests/bench/peer-bench.js [--mib 256] [--entries 100000] [--runs 3]
// peer.fetch: one blob fetched between two daemons on loopback (the raw endpoint, and `vdfs cat`
// through B's block pipeline with verification) against a plain Node TLS stream of the same file,
// interleaved. peer.replicate: `vdfs location add NAME peer://A/tree` (snapshot + apply) of N entries.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { vdfsOk } from '../helpers/cli';
import { makeNode, pair, startPeerDaemon } from '../helpers/peer';
import { PeerClient } from '../../providers/peer/peer-client';
import { readKeys } from '../../mount/keys';
import { ratio, round, type BenchOptions, type Result } from './lib';

const arg = (f: string, d: number) => { const i = process.argv.indexOf(f); return i >= 0 ? Number(process.argv[i + 1]) : d; };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

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
  return bytes / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
}

interface PeerFigures {
  plain: number[];
  raw: number[];
  ranged: number[];
  cat: number[];
  rep: number[];
  entries: number;
  mib: number;
}

async function measurePeers(MIB: number, ENTRIES: number, RUNS: number, log: (m: string) => void): Promise<PeerFigures> {
  const dir = '/tmp/vdfs-peer-bench';
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const a = makeNode(dir, 'alpha', {}, 'big');
  execFileSync('sh', ['-c', `head -c ${MIB << 20} /dev/urandom > ${join(a.src, 'blob.bin')}`]);
  const tree = join(dir, 'tree');
  log(`peer: generating ${ENTRIES} files`);
  const perDir = 1000;
  for (let d = 0; d * perDir < ENTRIES; d++) {
    mkdirSync(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < ENTRIES; f++) writeFileSync(join(tree, `d${d}`, `f${f}.txt`), `${d}/${f}\n`);
  }
  vdfsOk(a.home, ['location', 'add', 'tree', tree]);
  log('peer: scanning on A');
  vdfsOk(a.home, ['scan']);
  const da = await startPeerDaemon(a.home);
  try {
    const b = makeNode(dir, 'beta', {}, 'own');
    pair(a.home, b.home, ['big', 'tree']);
    vdfsOk(b.home, ['location', 'add', 'abig', 'peer://alpha/big']);
    const hash = vdfsOk(b.home, ['stat', '/abig/blob.bin', '--json']).json<{ hash: string }>().hash;
    const bytes = MIB << 20;

    const pems = await generate([{ name: 'commonName', value: 'bench' }], { keyType: 'ec', algorithm: 'sha256' });
    writeFileSync(join(dir, 'k.pem'), pems.private);
    writeFileSync(join(dir, 'c.pem'), pems.cert);
    const srv = spawn(process.execPath, ['-e', SERVER, join(dir, 'k.pem'), join(dir, 'c.pem'), join(a.src, 'blob.bin')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((r) => srv.stdout!.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
    const keys = readKeys(b.home)!;
    const url = da.url;
    const idA = vdfsOk(a.home, ['peer', 'id']).stdout.trim();
    const plain: number[] = [];
    const raw: number[] = [];
    const cat: number[] = [];
    const ranged: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      plain.push(await plainTls(port, bytes));
      {
        // The way the block pipeline asks: 1 MiB ranges, 4 in flight.
        const c = new PeerClient(url, idA, keys);
        const t0 = process.hrtime.bigint();
        let next = 0;
        let got = 0;
        const worker = async () => {
          while (next < bytes) {
            const off = next;
            next += 1 << 20;
            await c.stream(`/v1/blobs/${hash}`, (d) => (got += d.length), { headers: { range: `bytes=${off}-${Math.min(off + (1 << 20), bytes) - 1}` } });
          }
        };
        await Promise.all([worker(), worker(), worker(), worker()]);
        if (got !== bytes) throw new Error('short ranged fetch');
        ranged.push(bytes / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9));
        c.close();
      }
      const c = new PeerClient(url, idA, keys);
      const t0 = process.hrtime.bigint();
      let got = 0;
      const status = await c.stream(`/v1/blobs/${hash}`, (d) => (got += d.length));
      if (status !== 200 || got !== bytes) throw new Error(`short blob: ${status} ${got}`);
      raw.push(bytes / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9));
      c.close();
      rmSync(join(b.home, 'cache'), { recursive: true, force: true });
      mkdirSync(join(b.home, 'cache'));
      const t1 = process.hrtime.bigint();
      execFileSync('sh', ['-c', `node ${join(__dirname, '..', '..', '..', 'bin', 'vdfs')} --home ${b.home} cat /abig/blob.bin > /dev/null`]);
      cat.push(bytes / 1e6 / (Number(process.hrtime.bigint() - t1) / 1e9));
    }
    srv.kill();
    const rep: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      if (r > 0) vdfsOk(b.home, ['location', 'rm', 'atree']); // from the previous run
      const t0 = process.hrtime.bigint();
      vdfsOk(b.home, ['location', 'add', 'atree', 'peer://alpha/tree']);
      rep.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return { plain, raw, ranged, cat, rep, entries: ENTRIES + 1, mib: MIB };
  } finally {
    await da.stop();
  }
}

/** peer.fetch (a blob between two daemons vs a plain Node TLS stream) and peer.replicate. */
export async function peerBench(o: BenchOptions): Promise<Result[]> {
  const f = await measurePeers(o.quick ? 128 : 256, o.quick ? 20_000 : 100_000, o.reps, o.log);
  const fetch = median(f.raw);
  const plain = median(f.plain);
  return [
    {
      name: 'peer.fetch', unit: 'MB/s', better: 'higher', vdfs: round(fetch),
      baselines: [{ name: 'node-tls', value: round(plain), ratio: ratio(fetch, plain, 'higher') }],
      note: `${f.mib} MiB blob from node A's /v1/blobs to node B over mutual TLS on loopback; 1 MiB ranges x4 (the block pipeline's pattern) ${round(median(f.ranged))} MB/s; vdfs cat through B's verified block pipeline ${round(median(f.cat))} MB/s`,
      samples: { vdfs: f.raw, 'node-tls': f.plain },
    },
    {
      name: 'peer.replicate', unit: 's', better: 'lower', vdfs: round(median(f.rep)), baselines: [],
      note: `vdfs location add of a peer location of ${f.entries} entries (snapshot + apply)`,
      samples: { vdfs: f.rep },
    },
  ];
}

if (require.main === module) {
  void measurePeers(arg('--mib', 256), arg('--entries', 100_000), arg('--runs', 3), (m) => process.stderr.write(`${m}\n`))
    .then((f) => console.log(JSON.stringify(f, null, 2)))
    .catch((err) => { console.error(err); process.exit(1); });
}
