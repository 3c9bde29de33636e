import t from 'tap';
import { spawn, execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { tempDir, VDFS_BIN, vdfsOk } from './helpers/cli';
import { makeNode, startPeerDaemon, waitFor, type PeerDaemon } from './helpers/peer';

type Stall = 'tcp' | 'handshake' | 'headers' | 'body';

/** An attacker's self-signed certificate (any certificate may try to pair). */
function selfSigned(dir: string): { key: string; cert: string } {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(dir, 'k.pem'),
      '-out',
      join(dir, 'c.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=attacker',
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(join(dir, 'k.pem'), 'utf8'), cert: readFileSync(join(dir, 'c.pem'), 'utf8') };
}

interface Held {
  closed: boolean;
  openedAt: number;
  closedAt: number;
  stop(): void;
}

/**
 * One slow attacker connection from `from` (any 127.x address): it never finishes what it
 * started, trickling a byte every 300 ms where it can (a slowloris defeats plain idle timeouts).
 */
function hold(url: string, from: string, kind: Stall, id: { key: string; cert: string }): Held {
  const u = new URL(url);
  const h: Held = { closed: false, openedAt: Date.now(), closedAt: 0, stop: () => undefined };
  let timer: NodeJS.Timeout | undefined;
  const sock: net.Socket =
    kind === 'tcp'
      ? net.connect({ host: u.hostname, port: Number(u.port), localAddress: from })
      : tls.connect({ host: u.hostname, port: Number(u.port), localAddress: from, ...id, rejectUnauthorized: false, ALPNProtocols: ['vdfs-pair/1'] } as tls.ConnectionOptions);
  const trickle = (bytes: string) => {
    let i = 0;
    timer = setInterval(() => {
      if (!sock.destroyed) sock.write(bytes[i++ % bytes.length]);
    }, 300);
  };
  sock.on('secureConnect', () => {
    if (kind === 'headers') {
      sock.write('POST /v1/pair HTTP/1.1\r\nHost: x\r\n');
      trickle('X-Slow: aaaaaaaa\r\n');
    }
    if (kind === 'body') {
      sock.write('POST /v1/pair HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{');
      trickle(' ');
    }
  });
  sock.on('error', () => undefined);
  sock.on('close', () => {
    h.closed = true;
    h.closedAt = Date.now();
    if (timer) clearInterval(timer);
  });
  h.stop = () => {
    if (timer) clearInterval(timer);
    sock.destroy();
  };
  return h;
}

/** The real CLI without blocking this process (the attacker's sockets keep trickling meanwhile). */
function vdfsAsync(home: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawn(process.execPath, [VDFS_BIN, '--home', home, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** POST /v1/pair with a wrong token from `from`; the HTTP status (0: connection refused or cut). */
function badPair(url: string, from: string, id: { key: string; cert: string }): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const body = JSON.stringify({ token: '0'.repeat(32), name: 'x', addresses: [], shares: [] });
    const sock = tls.connect({
      host: u.hostname,
      port: Number(u.port),
      localAddress: from,
      ...id,
      rejectUnauthorized: false,
      ALPNProtocols: ['vdfs-pair/1'],
    } as tls.ConnectionOptions);
    let got = '';
    const timer = setTimeout(() => sock.destroy(), 5000);
    sock.on('secureConnect', () => sock.write(`POST /v1/pair HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 0));
    });
  });
}

t.test('the default: a TLS client that never sends a request is cut off within 30 s', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'f.txt': 'hello\n' });
  const configured = Number(vdfsOk(a.home, ['config', 'get', 'peer.requestTimeout']).stdout.trim());
  t.ok(configured > 0 && configured <= 30, `peer.requestTimeout defaults to ${configured} s (≤ 30 s)`);
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  const h = hold(da.url, '127.0.0.5', 'handshake', selfSigned(dir));
  t.teardown(() => h.stop());
  await waitFor(() => h.closed, 40_000, 200);
  t.ok(h.closed && h.closedAt - h.openedAt <= 31_000, `cut off after ${h.closed ? h.closedAt - h.openedAt : 'more than 40000'} ms`);
});

t.test('stalled connections are closed after peer.requestTimeout, whatever they stall in', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'f.txt': 'hello\n' });
  vdfsOk(a.home, ['config', 'set', 'peer.requestTimeout', '2']);
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  const id = selfSigned(dir);
  const held = (['tcp', 'handshake', 'headers', 'body'] as Stall[]).map((k) => ({ k, h: hold(da.url, '127.0.0.2', k, id) }));
  t.teardown(() => held.forEach(({ h }) => h.stop()));
  await waitFor(() => held.every(({ h }) => h.closed), 15_000, 100);
  for (const { k, h } of held) {
    t.ok(h.closed, `a connection stalled in ${k} was closed by the daemon`);
    t.ok(h.closed && h.closedAt - h.openedAt <= 2000 + 3000, `after ${h.closedAt - h.openedAt} ms (limit 2 s + check interval)`);
  }
  t.equal(da.proc.exitCode, null, 'the daemon is still running');
});

t.test('many slow connections from many sources: caps hold, a paired fetch and a new pairing still work', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'f.txt': 'hello from alpha\n' });
  const da: PeerDaemon = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  const b = makeNode(dir, 'beta');
  const line = vdfsOk(a.home, ['peer', 'invite', '--share', 'docs']).stdout.trim().split(' ');
  vdfsOk(b.home, ['peer', 'pair', line[3], line[4]]);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const c = makeNode(dir, 'gamma');
  const invite = vdfsOk(a.home, ['peer', 'invite', '--share', 'docs']).stdout.trim().split(' ');

  const id = selfSigned(dir);
  // One source tries to hold 30 sockets; 40 more sources hold 8 each (320 in all).
  const one = Array.from({ length: 30 }, () => hold(da.url, '127.0.0.2', 'body', id));
  t.teardown(() => one.forEach((h) => h.stop()));
  await waitFor(() => one.filter((h) => h.closed).length >= 22, 5000, 50);
  t.equal(one.filter((h) => !h.closed).length, 8, 'one source keeps at most 8 connections');
  const many = Array.from({ length: 40 }, (_, i) => Array.from({ length: 8 }, () => hold(da.url, `127.0.1.${i + 1}`, 'headers', id))).flat();
  t.teardown(() => many.forEach((h) => h.stop()));
  await waitFor(() => many.filter((h) => !h.closed).length <= 128, 5000, 50);
  const open = [...one, ...many].filter((h) => !h.closed).length;
  t.ok(open <= 128 + 8, `the attacker holds ${open} of 350 sockets (global cap 128)`);
  const fds = () =>
    execFileSync('ls', [`/proc/${da.proc.pid}/fd`])
      .toString()
      .split('\n').length;
  t.ok(fds() < 250, `the daemon has ${fds()} descriptors open`);

  const [fetched, paired] = await Promise.all([vdfsAsync(b.home, ['cat', '/adocs/f.txt']), vdfsAsync(c.home, ['peer', 'pair', invite[3], invite[4]])]);
  t.equal(fetched.stdout, 'hello from alpha\n', `a paired node still reads (${fetched.stderr.trim()})`);
  t.equal(paired.code, 0, `a real pairing still works (${paired.stderr.trim()})`);
  t.equal(da.proc.exitCode, null, 'the daemon is still running');
});

t.test('failed pairing attempts from many sources do not block a real pairing', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'f.txt': 'x' });
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  const id = selfSigned(dir);
  const statuses: number[] = [];
  for (let s = 1; s <= 10; s++) for (let i = 0; i < 5; i++) statuses.push(await badPair(da.url, `127.0.2.${s}`, id));
  t.ok(
    statuses.every((s) => s === 403),
    `50 wrong tokens from 10 sources are refused one by one (${[...new Set(statuses)].join(',')})`,
  );
  t.equal(await badPair(da.url, '127.0.2.1', id), 429, 'a source past 5 failures a minute is turned away');
  const c = makeNode(dir, 'gamma');
  const invite = vdfsOk(a.home, ['peer', 'invite', '--share', 'docs']).stdout.trim().split(' ');
  const r = await vdfsAsync(c.home, ['peer', 'pair', invite[3], invite[4]]);
  t.equal(r.code, 0, `the real pairing from another source succeeds (${r.stderr.trim()})`);
});

t.test("a hostile paired peer's oversized change page is refused with a clear error, and the reader stays up", async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'f.txt': 'fine\n' });
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  const b = makeNode(dir, 'beta');
  const line = vdfsOk(a.home, ['peer', 'invite', '--share', 'docs']).stdout.trim().split(' ');
  vdfsOk(b.home, ['peer', 'pair', line[3], line[4]]);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const db2 = await startPeerDaemon(b.home);
  t.teardown(() => db2.stop());
  // Once B holds A's tree, A's change log gains one 70 MB change (a hostile node writes
  // whatever it likes there); B must refuse the page it then pulls.
  t.ok((await waitFor(() => /snapshot applied/.test(db2.output()), 30_000)) >= 0, 'B replicated A first');
  const db = new Database(join(a.home, 'index.db'));
  const loc = (db.prepare("SELECT id FROM locations WHERE name = 'docs'").get() as { id: number }).id;
  const entry = { type: 'symlink', size: 0, mtimeSec: 0, mtimeNsec: 0, mode: 0o777, version: null, hash: null, target: 'x'.repeat(70 * 1024 * 1024) };
  db.prepare("INSERT INTO changes (location_id, op, path, to_path, entry, at) VALUES (?, 'put', 'huge', NULL, ?, 0)").run(loc, JSON.stringify(entry));
  db.close();
  t.ok((await waitFor(() => /larger than \d+ bytes/.test(db2.output()), 30_000)) >= 0, 'B refuses the page, saying why');
  t.match(db2.output(), /EFBIG|larger than/, 'with EFBIG');
  t.equal(db2.proc.exitCode, null, 'B is still running');
  const ls = await vdfsAsync(b.home, ['ls', '/adocs']);
  t.match(ls.stdout, /f\.txt/, 'its replica keeps the last good tree');
  t.notMatch(ls.stdout, /huge/, 'without the oversized entry');
});
