import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FS_ERROR_CODES } from '../core/fs-error';
import { codeOfPeerStatus, PEER_STATUS } from '../core/peer-protocol';
import { errorOf } from '../providers/peer/peer-client';
import { tempDir, vdfsOk } from './helpers/cli';
import { makeNode, pair, startPeerDaemon, tlsProbe, waitFor } from './helpers/peer';

t.test('the peer status table: every code has a status the client reads back to a code with that status', async (t) => {
  for (const code of FS_ERROR_CODES) {
    const status = PEER_STATUS[code];
    t.ok(status >= 400 && status < 600, `${code}: ${status} is an error status`);
    t.equal(PEER_STATUS[codeOfPeerStatus(status)], status, `${code} -> ${status} -> ${codeOfPeerStatus(status)} keeps the status`);
  }
  t.equal(codeOfPeerStatus(418), 'EIO', 'a status the protocol does not use is EIO');
  t.equal(PEER_STATUS.EBUSY, 429, "EBUSY is 429 here (rate limits), not WebDAV's 423");
  t.equal(PEER_STATUS.ESTALE, 409, "ESTALE is 409 here (no precondition in the request), not WebDAV's 412");
});

t.test('a real peer server answers ESTALE as 409 with its code, and a body-less HEAD is read back as ESTALE', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'x.txt': 'x\n' });
  const b = makeNode(dir, 'beta');
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  pair(a.home, b.home, ['docs']);
  const key = readFileSync(join(b.home, 'keys', 'node.key'), 'utf8');
  const cert = readFileSync(join(b.home, 'keys', 'node.crt'), 'utf8');
  const hash = execFileSync('b3sum', ['--no-names', join(a.src, 'x.txt')])
    .toString()
    .trim();
  const ask = async (method: string) => (await tlsProbe(da.url, { key, cert, request: `${method} /v1/blobs/${hash} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n` })).received;
  t.match(await ask('GET'), /^HTTP\/1\.1 200[\s\S]*\r\n\r\nx\n$/, 'served while the file is the indexed one');
  writeFileSync(join(a.src, 'x.txt'), 'y\n'); // same size, another mtime: not the indexed file
  const got = await ask('GET');
  t.match(got, /^HTTP\/1\.1 409 /, 'changed on disk since it was indexed: 409');
  const body = JSON.parse(got.slice(got.indexOf('\r\n\r\n') + 4)) as { code: string; message: string };
  t.equal(body.code, 'ESTALE', 'the body names the code');
  t.notMatch(body.message, /^E[A-Z]+: /, 'the message has the words only, no code baked in');
  t.match(body.message, /changed on disk since it was indexed/);
  const head = await ask('HEAD');
  t.match(head, /^HTTP\/1\.1 409 /, 'HEAD: the same status');
  t.equal(head.slice(head.indexOf('\r\n\r\n') + 4), '', 'HEAD: no body');
  const status = Number(head.slice(9, 12));
  t.equal(errorOf({ status, headers: {}, body: Buffer.alloc(0) }, 'HEAD').code, 'ESTALE', 'the client reads a body-less 409 as ESTALE');
  // The watcher may have indexed the new bytes by now (another hash: 404): either way the server answered.
  t.match(await ask('GET'), /^HTTP\/1\.1 (409|404) /, 'the server is still up');
  t.match(da.output(), /"status":409[\s\S]*"code":"ESTALE"|"code":"ESTALE"[\s\S]*"status":409/, 'and it logged the refusal with status and code');
});

t.test('a peer that goes away: the follower logs and counts its failed replication rounds, visible in vdfs status --json', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'x.txt': 'x\n' });
  const b = makeNode(dir, 'beta');
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const db = await startPeerDaemon(b.home);
  t.teardown(() => db.stop());
  type Status = { errors: { swallowed: Record<string, number> | null; daemonPid: number | null } };
  const status = () => vdfsOk(b.home, ['status', '--json']).json<Status>();
  t.ok((await waitFor(() => status().errors.daemonPid === db.proc.pid, 10_000)) >= 0, 'the daemon publishes its counts');
  t.notOk(status().errors.swallowed?.['peer replication'], 'no failure while A is up');
  await da.stop();
  t.ok((await waitFor(() => (status().errors.swallowed?.['peer replication'] ?? 0) >= 1, 20_000)) >= 0, 'failed rounds are counted once A is gone');
  t.match(db.output(), /peer replication failed: .*EHOSTDOWN|"code":"EHOSTDOWN"[^\n]*peer replication failed/, 'and logged with their code');
  t.equal(db.proc.exitCode, null, 'the follower stays up');
});
