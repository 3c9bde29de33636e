import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { tempDir, vdfs, vdfsOk, VDFS_BIN } from './helpers/cli';

function get(port: number, path: string, auth?: string): Promise<{ status: number; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false, auth, timeout: 10_000 }, (res) => {
      let body = '';
      const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
      const fingerprint = (cert.fingerprint256 ?? '').replace(/:/g, '').toLowerCase();
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('WebDAV beyond loopback: refused without users; with one, TLS with the node certificate and Basic auth', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'a.txt'), 'shared');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 's', join(dir, 'src')]);
  vdfsOk(home, ['scan']);
  const refused = vdfs(home, ['serve', '--webdav', '0.0.0.0:0']);
  t.equal(refused.code, 7, 'EACCES exit code');
  t.match(refused.stderr, /vdfs webdav user add/, 'the message says what to do');
  const add = spawnSync(process.execPath, [VDFS_BIN, '--home', home, 'webdav', 'user', 'add', 'alice'], { input: 'correct horse\n', encoding: 'utf8', timeout: 30_000 });
  t.equal(add.status, 0, add.stderr);
  t.same(vdfsOk(home, ['webdav', 'user', 'ls', '--json']).json(), ['alice']);

  const proc = spawn(process.execPath, [VDFS_BIN, '--home', home, 'serve', '--webdav', '0.0.0.0:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    proc.kill('SIGKILL');
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const started = Date.now();
  while (!/serving WebDAV at https:\/\/[^:]+:(\d+)\/ \(certificate SHA-256 ([0-9a-f]{64})\)/.test(out)) {
    if (Date.now() - started > 20_000 || proc.exitCode !== null) throw new Error(`no server: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const [, port, printed] = /serving WebDAV at https:\/\/[^:]+:(\d+)\/ \(certificate SHA-256 ([0-9a-f]{64})\)/.exec(out)!;
  t.equal(printed, vdfsOk(home, ['peer', 'id', '--json']).json<{ id: string }>().id, 'the printed fingerprint is the node id');
  const anon = await get(Number(port), '/s/a.txt');
  t.equal(anon.status, 401, 'no password: 401');
  t.equal(anon.fingerprint, printed, 'the server presents the certificate whose fingerprint was printed');
  t.equal((await get(Number(port), '/s/a.txt', 'alice:wrong password')).status, 401, 'wrong password: 401');
  const ok = await get(Number(port), '/s/a.txt', 'alice:correct horse');
  t.equal(ok.status, 200);
  t.equal(ok.body, 'shared');
});
