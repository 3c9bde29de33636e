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

const arg = (f: string, d: number) => { const i = process.argv.indexOf(f); return i >= 0 ? Number(process.argv[i + 1]) : d; };
const MIB = arg('--mib', 256);
const ENTRIES = arg('--entries', 100_000);
const RUNS = arg('--runs', 3);
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

async function main(): Promise<void> {
  const dir = '/tmp/vdfs-peer-bench';
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const a = makeNode(dir, 'alpha', {}, 'big');
  execFileSync('sh', ['-c', `head -c ${MIB << 20} /dev/urandom > ${join(a.src, 'blob.bin')}`]);
  const tree = join(dir, 'tree');
  process.stderr.write(`generating ${ENTRIES} files…\n`);
  const perDir = 1000;
  for (let d = 0; d * perDir < ENTRIES; d++) {
    mkdirSync(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < ENTRIES; f++) writeFileSync(join(tree, `d${d}`, `f${f}.txt`), `${d}/${f}\n`);
  }
  vdfsOk(a.home, ['location', 'add', 'tree', tree]);
  process.stderr.write('scanning on A…\n');
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
    const out = {
      'peer.fetch': { unit: 'MB/s', mib: MIB, plainTls: median(plain), endpoint: median(raw), endpointRatio: median(raw) / median(plain), ranged1MiBx4: median(ranged), rangedRatio: median(ranged) / median(plain), pipelineCat: median(cat), pipelineRatio: median(cat) / median(plain), runs: { plain, raw, ranged, cat } },
      'peer.replicate': { unit: 's', entries: ENTRIES + 1, seconds: median(rep), runs: rep },
    };
    console.log(JSON.stringify(out, null, 2));
  } finally {
    await da.stop();
  }
}

void main().catch((err) => { console.error(err); process.exit(1); });
