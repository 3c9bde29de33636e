import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { tempDir, vdfs, vdfsOk, VDFS_BIN } from './helpers/cli';

/** `vdfs` without blocking this process (its HTTP server must keep answering meanwhile). */
function vdfsAsync(home: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const p = spawn(process.execPath, [VDFS_BIN, '--home', home, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    }),
  );
}

/** This machine's first non-loopback IPv4 address: a host that is not loopback, as a LAN server would be. */
function lanAddress(): string {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('this test needs a non-loopback IPv4 address on some interface');
}

t.test('a gdrive:// location whose root is plain http on a non-loopback host is refused before any token is sent', async (t) => {
  const seen: IncomingHttpHeaders[] = [];
  const host = lanAddress();
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"id":"root","name":"My Drive","mimeType":"application/vnd.google-apps.folder","files":[]}');
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const home = join(tempDir(t), 'home');
  vdfsOk(home, ['init']);
  const tokenFile = join(tempDir(t), 'tok');
  writeFileSync(tokenFile, 'secret-access-token\n', { mode: 0o600 });
  vdfsOk(home, ['auth', 'gdrive', '--access-token-file', tokenFile, '--token-url', `http://127.0.0.1:1/token`]);

  const r = await vdfsAsync(home, ['location', 'add', 'g', `gdrive://root?root=${encodeURIComponent(`http://${host}:${port}/`)}`]);
  const scan = await vdfsAsync(home, ['scan', 'g']);
  t.same(
    seen.map((h) => h.authorization ?? null),
    [],
    'the http server never received a request (so no bearer token)',
  );
  t.not(r.code, 0, 'location add refuses the URI');
  t.match(r.stderr, /https/, `and says https is needed (${r.stderr.trim()})`);
  t.not(scan.code, 0, 'nothing to scan');

  const ok = vdfs(home, ['location', 'add', 'g2', `gdrive://root?root=${encodeURIComponent('https://example.invalid/')}`]);
  t.notMatch(ok.stderr, /must use https/, 'an https root is accepted by the URI check (it may fail later only for reaching the host)');
  const bad = await vdfsAsync(home, ['auth', 'gdrive', '--access-token-file', tokenFile, '--token-url', `http://${host}:${port}/token`]);
  t.not(bad.code, 0, 'a plain-http token endpoint off loopback is refused too (the refresh token goes there)');
  t.same(seen.length, 0, 'still no request reached the http server');
});

t.test('vdfs auth gdrive takes the access token from stdin or a file, never needing it in argv', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  vdfsOk(home, ['init']);
  const p = spawn(process.execPath, [VDFS_BIN, '--home', home, 'auth', 'gdrive', '--access-token', '-', '--refresh-token', '-', '--token-url', 'http://127.0.0.1:1/token'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => p.on('exit', r));
  const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
  // What `ps` shows every user: the command line of the waiting process.
  const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
  p.stdin.end('stdin-access-token\nstdin-refresh-token\n');
  const code = await exited;
  clearTimeout(timer);
  t.equal(code, 0, `auth with tokens on stdin succeeds (${out.trim()})`);
  t.notMatch(cmdline, /stdin-access-token/, 'the token was never in argv');
  const stored = JSON.parse(readFileSync(join(home, 'gdrive', 'token.json'), 'utf8')) as { access_token: string; refresh_token: string };
  t.same([stored.access_token, stored.refresh_token], ['stdin-access-token', 'stdin-refresh-token'], 'tokens read from stdin are stored');

  const f = join(dir, 'access');
  writeFileSync(f, 'file-access-token\n', { mode: 0o600 });
  vdfsOk(home, ['auth', 'gdrive', '--access-token-file', f, '--token-url', 'http://127.0.0.1:1/token']);
  t.equal((JSON.parse(readFileSync(join(home, 'gdrive', 'token.json'), 'utf8')) as { access_token: string }).access_token, 'file-access-token', 'from a file');
  const empty = join(dir, 'empty');
  writeFileSync(empty, '\n');
  const e = vdfs(home, ['auth', 'gdrive', '--access-token-file', empty]);
  t.not(e.code, 0, 'an empty token is refused');
  t.match(e.stderr, /empty/);
  const help = vdfsOk(home, ['auth', 'gdrive', '--help']).stdout;
  t.match(help, /visible to other users/, '--help says the argv form is visible to other users');
});
