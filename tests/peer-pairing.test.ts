import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { tempDir, vdfs, vdfsOk } from './helpers/cli';
import { makeNode, pair, startPeerDaemon, tlsProbe, waitFor } from './helpers/peer';

t.test('node identity: keys in keys/ (0700/0600), id = SHA-256 of the certificate DER (openssl), short form', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'n');
  const init = vdfsOk(home, ['init', '--name', 'n', '--json']).json<{ node: string }>();
  t.equal(statSync(join(home, 'keys')).mode & 0o777, 0o700, 'keys/ is 0700');
  t.equal(statSync(join(home, 'keys', 'node.key')).mode & 0o777, 0o600, 'key is 0600');
  t.equal(statSync(join(home, 'keys', 'node.crt')).mode & 0o777, 0o600, 'certificate is 0600');
  const der = execFileSync('openssl', ['x509', '-in', join(home, 'keys', 'node.crt'), '-outform', 'der']);
  const oracle = execFileSync('sha256sum', { input: der }).toString().split(' ')[0];
  t.equal(init.node, oracle, 'init reports the certificate fingerprint as the node id');
  const id = vdfsOk(home, ['peer', 'id', '--json']).json<{ id: string; short: string }>();
  t.equal(id.id, oracle);
  t.match(id.short, /^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$/);
  t.ok(oracle.startsWith(id.short.replace(/-/g, '')), 'the short form is a prefix');
  t.equal(vdfsOk(home, ['peer', 'id']).stdout.trim(), oracle);
  t.equal(vdfsOk(home, ['peer', 'id', '--short']).stdout.trim(), id.short);
  const before = readFileSync(join(home, 'keys', 'node.key'), 'utf8');
  vdfsOk(home, ['init']);
  t.equal(readFileSync(join(home, 'keys', 'node.key'), 'utf8'), before, 'a second init keeps the keys');
  t.equal(vdfsOk(home, ['status', '--json']).json<{ node: { id: string } }>().node.id, oracle, 'status shows the same id');
});

t.test('pairing, refusals at the TLS layer and in HTTP, revocation', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'x.txt': 'x\n' });
  const b = makeNode(dir, 'beta');
  const c = makeNode(dir, 'gamma');
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());

  t.equal(vdfs(b.home, ['peer', 'invite']).code, 6, 'invite without a running peer server: EHOSTDOWN');
  const line = pair(a.home, b.home, ['docs']);
  t.match(line, /^vdfs peer pair https:\/\/127\.0\.0\.1:\d+ [0-9a-f]{32}#[0-9a-f]{64}$/, 'one line, token and fingerprint');
  const token = line.split(' ')[4].split('#')[0];
  t.equal(Buffer.from(token, 'hex').length, 16, 'token: 128 bits as 32 hex digits');

  const aSeen = vdfsOk(a.home, ['peer', 'ls', '--json', '--no-probe']).json<{ name: string; id: string; shares: string[] }[]>();
  const bSeen = vdfsOk(b.home, ['peer', 'ls', '--json']).json<{ name: string; id: string; online: boolean; latencyMs: number; addresses: string[] }[]>();
  t.same(
    aSeen.map((p) => [p.name, p.id, p.shares]),
    [['beta', vdfsOk(b.home, ['peer', 'id']).stdout.trim(), ['docs']]],
    'the inviter knows the joiner by certificate and shares docs',
  );
  t.same(
    bSeen.map((p) => [p.name, p.id, p.online, p.addresses]),
    [['alpha', vdfsOk(a.home, ['peer', 'id']).stdout.trim(), true, [da.url]]],
    'the joiner knows the inviter, online',
  );
  t.ok(typeof bSeen[0].latencyMs === 'number' && Number.isFinite(bSeen[0].latencyMs) && bSeen[0].latencyMs >= 0, 'latency measured (a number of milliseconds, not null)', {
    found: bSeen[0].latencyMs,
  });

  // A replayed token: the same line run on another node.
  const [, , , url, code] = line.split(' ');
  const replay = vdfs(c.home, ['peer', 'pair', url, code]);
  t.equal(replay.code, 7, 'a used token is refused (EACCES)');
  t.match(replay.stderr, /unknown or already used/);
  // A wrong fingerprint in the invitation: the client refuses the server before sending the token.
  const fresh = vdfsOk(a.home, ['peer', 'invite']).stdout.trim().split(' ');
  const forged = `${fresh[4].split('#')[0]}#${'0'.repeat(64)}`;
  const wrongFp = vdfs(c.home, ['peer', 'pair', fresh[3], forged]);
  t.equal(wrongFp.code, 7, 'a pinned fingerprint that does not match: EACCES');
  t.match(wrongFp.stderr, /not the paired 0000/);
  t.equal(vdfs(c.home, ['peer', 'pair', fresh[3], fresh[4]]).code, 0, 'the token was not used up by the refused attempt');
  // Expired.
  const inv = vdfsOk(a.home, ['peer', 'invite', '--expires', '1s', '--json']).json<{ command: string; expires: string }>();
  const short = inv.command.split(' ');
  // The condition is the invitation's own expiry time (as the inviter recorded it) being past.
  t.ok((await waitFor(() => Date.now() > Date.parse(inv.expires) + 50, 5000, 20)) >= 0, 'the invitation has expired by its own clock');
  const late = vdfs(makeNode(dir, 'delta').home, ['peer', 'pair', short[3], short[4]]);
  t.equal(late.code, 7, 'an expired token is refused');
  t.match(late.stderr, /expired/);

  // An unknown certificate is cut off after the handshake, before any HTTP.
  const stranger = await generate([{ name: 'commonName', value: 'stranger' }], { keyType: 'ec', algorithm: 'sha256' });
  const probe = await tlsProbe(da.url, { key: stranger.private, cert: stranger.cert });
  t.equal(probe.received, '', 'no HTTP answer for an unpaired certificate');
  const noCert = await tlsProbe(da.url);
  t.equal(noCert.received, '', 'nor without a certificate');
  // The server logs after the probe saw the connection end: wait for the line (hard timeout).
  t.ok((await waitFor(() => /refused a connection: certificate not paired/.test(da.output()), 10_000, 50)) >= 0, 'refusals are logged');
  // On the pairing ALPN an unpaired certificate may only pair.
  const pairOnly = await tlsProbe(da.url, { key: stranger.private, cert: stranger.cert, alpn: 'vdfs-pair/1' });
  t.match(pairOnly.received, /^HTTP\/1\.1 403/, 'pairing connection: anything but POST /v1/pair is 403');
  // Guessing tokens is rate limited.
  const guesses: string[] = [];
  for (let i = 0; i < 7; i++) {
    const body = JSON.stringify({ token: `guess${i}AAAAAAAAAAAAAAAAAAAA`, name: 'x', addresses: [], shares: [] });
    const r = await tlsProbe(da.url, {
      key: stranger.private,
      cert: stranger.cert,
      alpn: 'vdfs-pair/1',
      request: `POST /v1/pair HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    });
    guesses.push(r.received.slice(9, 12));
  }
  // Two failures from this address happened above (the replay, the expired token): 5 per minute in all.
  t.same(guesses, ['403', '403', '403', '429', '429', '429', '429'], 'wrong tokens are 403 until five failures a minute, then 429');
  // The daemon's log reaches us through a pipe: under load the line came after the answer.
  await waitFor(() => /too many pairing attempts/.test(da.output()), 10_000, 50);
  t.match(da.output(), /too many pairing attempts/, 'and logged');

  // A paired client: by path, malformed and unshared hashes are refused.
  const bKey = readFileSync(join(b.home, 'keys', 'node.key'), 'utf8');
  const bCert = readFileSync(join(b.home, 'keys', 'node.crt'), 'utf8');
  const get = async (path: string, extra = '') =>
    (await tlsProbe(da.url, { key: bKey, cert: bCert, request: `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}Connection: close\r\n\r\n` })).received;
  t.match(await get('/v1/node'), /^HTTP\/1\.1 200[\s\S]*"name":"alpha"/);
  t.match(await get('/v1/files/x.txt'), /^HTTP\/1\.1 404/, 'no reading by path');
  t.match(await get('/v1/blobs/../../etc/passwd'), /^HTTP\/1\.1 (400|404)/, 'no path tricks');
  t.match(await get('/v1/blobs/zz'), /^HTTP\/1\.1 400/, 'malformed hash');
  t.match(await get(`/v1/blobs/${'a'.repeat(64)}`), /^HTTP\/1\.1 404/, 'unknown hash');
  const xHash = execFileSync('b3sum', ['--no-names', join(a.src, 'x.txt')])
    .toString()
    .trim();
  t.match(await get(`/v1/blobs/${xHash}`, 'Range: bytes=0-0\r\n'), /^HTTP\/1\.1 206[\s\S]*\r\n\r\nx$/, 'a shared hash, one byte');
  t.match(await get(`/v1/blobs/${xHash}`, 'Range: bytes=0-0,1-1\r\n'), /^HTTP\/1\.1 400/, 'multiple ranges refused');
  t.match(await get(`/v1/changes?location=docs&since=-1`), /^HTTP\/1\.1 400/, 'malformed since');
  t.match(await get(`/v1/changes?location=secret&since=0`), /^HTTP\/1\.1 404/, 'unshared location');
  t.match(await get(`/v1/x?${'a'.repeat(3000)}`), /^HTTP\/1\.1 414/, 'oversized URL');
  // gamma paired but shares nothing with it: the same hash is unknown to it.
  const gKey = readFileSync(join(c.home, 'keys', 'node.key'), 'utf8');
  const gCert = readFileSync(join(c.home, 'keys', 'node.crt'), 'utf8');
  t.match(
    (await tlsProbe(da.url, { key: gKey, cert: gCert, request: `GET /v1/blobs/${xHash} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n` })).received,
    /^HTTP\/1\.1 404/,
    'a hash not shared with this peer is 404',
  );

  // Revocation closes an open connection at once.
  const u = new URL(da.url);
  const tls = await import('node:tls');
  const sock = tls.connect({ host: u.hostname, port: Number(u.port), key: bKey, cert: bCert, rejectUnauthorized: false });
  let closed = false;
  sock.on('close', () => (closed = true));
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('secureConnect', r));
  // One answered request first: the connection is admitted at the HTTP level (no guessing with a sleep).
  let got = '';
  sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
  sock.write('GET /v1/node HTTP/1.1\r\nHost: x\r\n\r\n');
  t.ok((await waitFor(() => /^HTTP\/1\.1 200/.test(got) && got.includes('\r\n\r\n'), 5000, 10)) >= 0, 'the connection is admitted (GET /v1/node answered)');
  sock.write('GET /v1/changes?location=docs&since=999999999&wait=30 HTTP/1.1\r\nHost: x\r\n\r\n');
  t.notOk(closed, 'a long-poll is open');
  vdfsOk(a.home, ['peer', 'rm', 'beta']);
  t.ok((await waitFor(() => closed, 3000)) >= 0, 'peer rm closes its open connection within a second or so');
  t.equal((await tlsProbe(da.url, { key: bKey, cert: bCert })).received, '', 'and it is refused at TLS afterwards');
  t.equal(vdfs(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']).code !== 0, true, 'its node cannot add the location any more');
});
