import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk, VDFS_BIN } from './helpers/cli';
import { startDriveServer } from './helpers/drive-server';
import { GdriveProvider } from '../providers/gdrive/gdrive-provider';
import { writeTokens } from '../providers/gdrive/gdrive-tokens';
import { parseGdriveUri } from '../providers/gdrive/gdrive-uri';
import { displayNames } from '../providers/gdrive/gdrive-names';

/** Runs `vdfs auth gdrive` against the test server's consent page and token endpoint; `answer` gets the printed URL. */
async function authFlow(home: string, root: string, answer: (url: string, stdin: NodeJS.WritableStream) => Promise<void>): Promise<{ code: number | null; out: string }> {
  const p = spawn(process.execPath, [VDFS_BIN, '--home', home, 'auth', 'gdrive', '--client-id', 'test-client', '--auth-url', `${root}auth`, '--token-url', `${root}token`], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => p.on('exit', r));
  const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
  const end = Date.now() + 10_000;
  while (!/https?:\/\/\S+auth\?\S+/.test(out) && Date.now() < end && p.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  const url = /(https?:\/\/\S+auth\?\S+)/.exec(out)?.[1];
  if (url) await answer(url, p.stdin);
  const code = await exited;
  clearTimeout(timer);
  return { code, out };
}

t.test('the installed-app flow: PKCE, loopback redirect, paste fallback, tokens at 0600', async (t) => {
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const home = join(tempDir(t), 'home');
  vdfsOk(home, ['init']);
  const r = await authFlow(home, drive.root, async (url) => {
    const u = new URL(url);
    t.equal(u.searchParams.get('code_challenge_method'), 'S256', 'PKCE S256');
    t.match(u.searchParams.get('redirect_uri'), /^http:\/\/127\.0\.0\.1:\d+\/$/, 'loopback redirect');
    await fetch(url); // the "browser": consent, then the redirect to vdfs's loopback listener
  });
  t.equal(r.code, 0, 'the flow completes', { out: r.out });
  const file = join(home, 'gdrive', 'token.json');
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.match(JSON.parse(readFileSync(file, 'utf8')), { access_token: 'code-token', refresh_token: 'code-refresh', client_id: 'test-client' }, 'the exchanged tokens are stored');

  // Headless: the redirect cannot reach this machine; the user pastes the address instead.
  const home2 = join(tempDir(t), 'home');
  vdfsOk(home2, ['init']);
  const r2 = await authFlow(home2, drive.root, async (url, stdin) => {
    const res = await fetch(url, { redirect: 'manual' });
    stdin.write(`${res.headers.get('location')}\n`);
  });
  t.equal(r2.code, 0, 'the pasted redirect completes the flow', { out: r2.out });
  t.match(JSON.parse(readFileSync(join(home2, 'gdrive', 'token.json'), 'utf8')), { access_token: 'code-token' });
});

t.test('an expired access token is refreshed and stored; a revoked one is EACCES naming the command', async (t) => {
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const home = tempDir(t);
  writeTokens({ access_token: 'expired', refresh_token: drive.refreshToken, client_id: 'c', token_url: `${drive.root}token` }, home);
  const folder = await drive.mkdir('f');
  await drive.put('a.txt', 'abc', { base: folder });
  const p = new GdriveProvider(parseGdriveUri(`gdrive://${folder}?root=${encodeURIComponent(drive.root)}`), { homeDir: home });
  t.teardown(() => p.close());
  t.equal((await p.readRange('a.txt', 0, 10)).toString(), 'abc', 'works after a refresh');
  // Stored after the refresh: poll the file itself, not a guessed 100 ms.
  const stored = () => {
    try {
      return String((JSON.parse(readFileSync(join(home, 'gdrive', 'token.json'), 'utf8')) as { access_token?: string }).access_token);
    } catch {
      return '';
    }
  };
  for (const end = Date.now() + 10_000; !/^tok-/.test(stored()) && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
  t.match(stored(), /^tok-/, 'the refreshed token is stored');
  await drive.revoke();
  const p2 = new GdriveProvider(parseGdriveUri(`gdrive://${folder}?root=${encodeURIComponent(drive.root)}`), { homeDir: home });
  t.teardown(() => p2.close());
  await t.rejects(p2.stat('a.txt'), { code: 'EACCES', message: /vdfs auth gdrive/ });
});

t.test('names: duplicates get the id, "/" becomes U+2215, Docs get their export extension', async (t) => {
  const m = displayNames(
    [
      { id: 'B', name: 'x.txt', createdTime: '2026-01-02' },
      { id: 'A', name: 'x.txt', createdTime: '2026-01-01' },
      { id: 'C', name: 'a/b', createdTime: '2026-01-01' },
      { id: 'D', name: 'Report', createdTime: '2026-01-01' },
      { id: 'E', name: '..', createdTime: '2026-01-01' },
    ],
    (c) => (c.id === 'D' ? 'docx' : undefined),
  );
  t.same(Object.fromEntries([...m].map(([k, v]) => [k, v.id])), { 'x.txt': 'A', 'x [gd-B].txt': 'B', 'a\u2215b': 'C', 'Report.docx': 'D', '_..': 'E' });
});
