import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, scryptSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { tempDir, until, vdfs, vdfsOk, VDFS_BIN } from './helpers/cli';
import { isMounted } from './helpers/mount';
import { newWebdavPassword } from '../app/webdav-access';
import { basicAuth, dav, metric, registerWebdavLogin, startWebdavServer, webdavLogin } from './helpers/webdav';

// Issue 12 items 2 and 7: the share asks for credentials on every bind, loopback
// included; guessing is throttled without spending scrypt; unknown names cost the same.

/** One request from a chosen loopback source address (127.0.0.x are all this host). */
function from(
  source: string,
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        localAddress: source,
        headers: { ...headers, ...(body !== undefined ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) },
        timeout: 30_000,
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, ms: Date.now() - t0 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/** An RFC 7616 client answer (MD5, qop=auth) to the Digest challenge among `challenges`. */
function digestAnswer(challenges: string | string[] | undefined, user: string, password: string, method: string, uri: string): string {
  const list = Array.isArray(challenges) ? challenges : [challenges ?? ''];
  const ch = list
    .join(', ')
    .split(/, (?=Basic )/)
    .find((c) => /^digest /i.test(c));
  if (!ch) throw new Error(`no Digest challenge in ${JSON.stringify(list)}`);
  const field = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(ch)?.[1] ?? '';
  const [realm, nonce, opaque] = [field('realm'), field('nonce'), field('opaque')];
  const cnonce = 'abcdef0123456789';
  const nc = '00000001';
  const response = md5(`${md5(`${user}:${realm}:${password}`)}:${nonce}:${nc}:${cnonce}:auth:${md5(`${method}:${uri}`)}`);
  return `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", algorithm=MD5, qop=auth, nc=${nc}, cnonce="${cnonce}", response="${response}", opaque="${opaque}"`;
}

t.test('loopback is no exception: every request needs the home credential or an added user', async (t) => {
  const srv = await startWebdavServer(t, { seed: (d) => writeFileSync(join(d, 'f.txt'), 'secret') });
  const credFile = join(srv.home, 'webdav-credential.json');
  t.ok(existsSync(credFile), 'vdfs init generated a credential in the home');
  t.equal(statSync(credFile).mode & 0o777, 0o600, 'readable by its owner only');
  const login = webdavLogin(srv.home);
  t.equal(login.user, 'vdfs');
  t.ok(login.password.length >= 20, 'a long random password');
  t.equal(JSON.parse(readFileSync(credFile, 'utf8')).password, login.password, '`vdfs webdav credentials` shows it');
  await until(() => srv.output().includes('WebDAV login:'), 5000); // printed just after the URL
  t.match(srv.output(), /WebDAV login: http:\/\/vdfs@127\.0\.0\.1:\d+\/ \(user vdfs; password: vdfs --home \S+ webdav credentials\)/, 'the daemon says how to log in');

  // The attack of the issue: another local user or app writes through the share
  for (const [method, path, body] of [
    ['GET', '/loc/f.txt'],
    ['PROPFIND', '/loc/'],
    ['OPTIONS', '/'],
    ['PUT', '/loc/authorized_keys', 'ssh-ed25519 AAAA attacker'],
    ['DELETE', '/loc/f.txt'],
    ['GET', '/~vdfs/metrics'],
  ] as const) {
    const r = await dav(srv.port, method, path, { anonymous: true, body, headers: { Depth: '0' } });
    t.equal(r.status, 401, `${method} ${path} without credentials: 401`);
    // Node joins repeated WWW-Authenticate headers with ", "
    const www = ([] as string[]).concat(r.headers['www-authenticate'] ?? []).join(', ');
    t.match(www, /(^|, )Digest realm="vdfs", qop="auth", algorithm=MD5, nonce="[^"]+"/, `${method}: Digest offered (Windows refuses Basic over http)`);
    t.match(www, /(^|, )Basic realm="vdfs"/, `${method}: Basic offered`);
  }
  t.notOk(existsSync(join(srv.locDir, 'authorized_keys')), 'nothing was written');
  t.equal(readFileSync(join(srv.locDir, 'f.txt'), 'utf8'), 'secret', 'nothing was deleted');
  t.equal((await dav(srv.port, 'GET', '/loc/f.txt', { headers: { Authorization: basicAuth('vdfs', 'wrong-password') } })).status, 401, 'wrong password: 401');
  t.equal((await dav(srv.port, 'GET', '/loc/f.txt', { headers: { Authorization: basicAuth('root', login.password) } })).status, 401, 'right password, other name: 401');

  const basic = await dav(srv.port, 'GET', '/loc/f.txt', { headers: { Authorization: basicAuth(login.user, login.password) } });
  t.equal(basic.text, 'secret', 'Basic with the home credential');

  const challenge = (await dav(srv.port, 'GET', '/loc/f.txt', { anonymous: true })).headers['www-authenticate'];
  const digest = await dav(srv.port, 'GET', '/loc/f.txt', { headers: { Authorization: digestAnswer(challenge, login.user, login.password, 'GET', '/loc/f.txt') } });
  t.equal(digest.status, 200, 'Digest with the home credential');
  t.equal(digest.text, 'secret');
  t.equal(
    (await dav(srv.port, 'GET', '/loc/f.txt', { headers: { Authorization: digestAnswer(challenge, login.user, 'wrong', 'GET', '/loc/f.txt') } })).status,
    401,
    'Digest with a wrong password: 401',
  );
  t.equal(
    (await dav(srv.port, 'DELETE', '/loc/f.txt', { headers: { Authorization: digestAnswer(challenge, login.user, login.password, 'GET', '/loc/f.txt') } })).status,
    401,
    'a Digest answer for GET does not authorise a DELETE',
  );
  t.equal(
    (await dav(srv.port, 'GET', '/loc/f.txt', { headers: { Authorization: digestAnswer(challenge, login.user, login.password, 'GET', '/loc/other') } })).status,
    401,
    'nor another URL',
  );
  const forged = digestAnswer(challenge, login.user, login.password, 'GET', '/loc/f.txt').replace(/nonce="[^"]+"/, 'nonce="lzzzzzzz.AAAAAAAAAAAAAAAAAAAAAA"');
  t.equal((await dav(srv.port, 'GET', '/loc/f.txt', { headers: { Authorization: forged } })).status, 401, 'a nonce the server did not make: 401');
});

t.test('a generated password never begins with `-` (a getopt tool reads it as an option) and keeps 128 random bits', async (t) => {
  const seen = new Set(Array.from({ length: 2000 }, () => newWebdavPassword()));
  t.equal(seen.size, 2000, 'all different');
  t.equal([...seen].filter((p) => p.startsWith('-')).length, 0, 'none begins with -');
  t.ok(
    [...seen].every((p) => /^[A-Za-z][A-Za-z0-9_-]{22}$/.test(p)),
    'a letter, then 22 base64url characters',
  );
});

t.test('`webdav user add` users work on loopback; old scrypt hashes still verify; the no-auth flag says what it does', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'a.txt'), 'shared');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 's', join(dir, 'src')]);
  vdfsOk(home, ['scan']);
  const add = spawnSync(process.execPath, [VDFS_BIN, '--home', home, 'webdav', 'user', 'add', 'alice'], { input: 'correct horse\n', encoding: 'utf8', timeout: 30_000 });
  t.equal(add.status, 0, add.stderr);
  const stored = JSON.parse(readFileSync(join(home, 'webdav-users.json'), 'utf8')) as { name: string; scrypt: string }[];
  t.match(stored[0]!.scrypt, /^scrypt\$16384\$8\$5\$/, 'new hashes use the OWASP parameters');
  // A hash made by the previous release (N=2^14, r=8, p=1)
  const salt = Buffer.from('0123456789abcdef');
  stored.push({ name: 'old', scrypt: `scrypt$16384$8$1$${salt.toString('base64')}$${scryptSync('old password', salt, 32, { N: 16384, r: 8, p: 1 }).toString('base64')}` });
  writeFileSync(join(home, 'webdav-users.json'), JSON.stringify(stored));

  const srv = await startWebdavServerFor(t, home, []);
  t.equal((await dav(srv.port, 'GET', '/s/a.txt', { headers: { Authorization: basicAuth('alice', 'correct horse') } })).text, 'shared', 'an added user on loopback');
  t.equal((await dav(srv.port, 'GET', '/s/a.txt', { headers: { Authorization: basicAuth('old', 'old password') } })).status, 200, 'a hash with the old parameters');
  t.equal((await dav(srv.port, 'GET', '/s/a.txt', { headers: { Authorization: basicAuth('old', 'old passwort') } })).status, 401, 'and a wrong password for it');
  await srv.stop();

  const help = vdfsOk(home, ['serve', '--help']).stdout.replace(/\s+/g, ' ');
  t.match(help, /--webdav-insecure-no-auth\s+INSECURE: serve WebDAV on loopback WITHOUT any password/, 'the flag says what it does');
  const open = await startWebdavServerFor(t, home, ['--webdav-insecure-no-auth']);
  t.equal((await dav(open.port, 'GET', '/s/a.txt', { anonymous: true })).status, 200, 'with it, no credentials are asked');
  t.match(open.output(), /WebDAV has NO authentication/, 'and the daemon says so');
  const lan = vdfs(home, ['serve', '--webdav', '0.0.0.0:0', '--webdav-insecure-no-auth']);
  t.not(lan.code, 0, 'refused beyond loopback');
  t.match(lan.stderr, /loopback only/);
});

/** `vdfs serve --webdav 127.0.0.1:0 ...extra` on an existing home. */
async function startWebdavServerFor(t: { teardown(fn: () => unknown): void }, home: string, extra: string[]): Promise<{ port: number; output(): string; stop(): Promise<void> }> {
  const proc = spawn(process.execPath, [VDFS_BIN, '--home', home, 'serve', '--webdav', '127.0.0.1:0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  t.teardown(stop);
  const started = Date.now();
  while (!/vdfs serving WebDAV at http:\/\/127\.0\.0\.1:(\d+)\//.test(out)) {
    if (proc.exitCode !== null || Date.now() - started > 20_000) throw new Error(`no server: ${out}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return { port: Number(/127\.0\.0\.1:(\d+)\//.exec(out)![1]), output: () => out, stop };
}

t.test('password guessing is throttled per address without scrypt, while real clients and file I/O go on', async (t) => {
  const srv = await startWebdavServer(t, { seed: (d) => writeFileSync(join(d, 'f.txt'), 'the file') });
  const add = spawnSync(process.execPath, [VDFS_BIN, '--home', srv.home, 'webdav', 'user', 'add', 'alice'], { input: 'alice password\n', encoding: 'utf8', timeout: 30_000 });
  t.equal(add.status, 0, add.stderr);
  // users are read at start: restart on the same home
  await srv.stop();
  const s = await startWebdavServerFor(t, srv.home, []);
  const port = s.port;
  const checks = () => metric(port, 'vdfs_webdav_password_checks_total');
  // helpers' requests to this port carry the home login
  registerWebdavLogin(port, srv.home);

  // Unknown names cost one scrypt, like known names with a wrong password
  let before = await checks();
  t.equal((await from('127.0.0.5', port, 'GET', '/loc/f.txt', { Authorization: basicAuth('alice', 'wrong guess') })).status, 401);
  const known = (await checks()) - before;
  before = await checks();
  t.equal((await from('127.0.0.5', port, 'GET', '/loc/f.txt', { Authorization: basicAuth('nobody-here', 'wrong guess') })).status, 401);
  const unknown = (await checks()) - before;
  t.equal(known, 1, 'a wrong password of a known user: one scrypt');
  t.equal(unknown, 1, 'an unknown user: one scrypt too (against a dummy hash), so timing tells nothing');

  // A real client logged in before the attack
  const alice = { Authorization: basicAuth('alice', 'alice password') };
  t.equal((await from('127.0.0.2', port, 'GET', '/loc/f.txt', alice)).status, 200, 'alice logs in');

  // The attacker guesses, 60 times in parallel from one address
  before = await checks();
  const guesses = await Promise.all(Array.from({ length: 60 }, (_, i) => from('127.0.0.3', port, 'GET', '/loc/f.txt', { Authorization: basicAuth('alice', `guess-${i}`) })));
  const spent = (await checks()) - before;
  const statuses = guesses.map((g) => g.status);
  t.notOk(statuses.includes(200), 'no guess got in');
  t.ok(
    statuses.filter((x) => x === 429).length >= 50,
    `most guesses refused without a check (${statuses.filter((x) => x === 429).length}x 429, ${statuses.filter((x) => x === 503).length}x 503, ${statuses.filter((x) => x === 401).length}x 401)`,
  );
  t.ok(spent <= 5, `only ${spent} of 60 parallel guesses cost a scrypt`);

  // It keeps guessing, one after the other: after 5 failures the address must wait
  const seq: number[] = [];
  for (let i = 0; i < 10; i++) seq.push((await from('127.0.0.3', port, 'GET', '/loc/f.txt', { Authorization: basicAuth('alice', `more-${i}`) })).status);
  const total = (await checks()) - before;
  t.ok(total <= 6, `70 guesses cost ${total} scrypt runs in all (5 free failures, then back-off)`);
  t.same(seq.slice(-4), [429, 429, 429, 429], `the guessing address now waits (${seq.join(' ')})`);
  before = await checks();
  const late = await from('127.0.0.3', port, 'GET', '/loc/f.txt', { Authorization: basicAuth('alice', 'one more') });
  t.equal(late.status, 429, 'refused at once');
  t.match(late.headers['retry-after'], /^\d+$/, '429 says when to retry');
  t.equal((await checks()) - before, 0, 'and costs nothing');
  // ...even with alice's right password: the address must wait out its back-off
  t.equal(
    (await from('127.0.0.3', port, 'GET', '/loc/f.txt', { Authorization: basicAuth('alice', 'alice password') })).status,
    200,
    'a credential accepted before is still served from the cache',
  );

  // Meanwhile everyone else is served
  const during = await Promise.all([
    from('127.0.0.2', port, 'GET', '/loc/f.txt', alice),
    from('127.0.0.4', port, 'GET', '/loc/f.txt', { Authorization: basicAuth('alice', 'alice password') }),
    dav(port, 'GET', '/loc/f.txt'),
  ]);
  t.same(
    during.map((r) => r.status),
    [200, 200, 200],
    'alice, alice from a new address (one scrypt) and the home credential are served',
  );
  t.ok(
    during.every((r) => (r as { text: string }).text === 'the file'),
    'with the file',
  );
});

t.test('`vdfs up` shares read-only unless --writable, and prints the URL with the user and how to get the password', async (t) => {
  for (const writable of [false, true]) {
    const dir = tempDir(t);
    const home = join(dir, 'home');
    const src = join(dir, 'docs');
    const mnt = join(dir, 'mnt');
    mkdirSync(src);
    mkdirSync(mnt);
    writeFileSync(join(src, 'a.txt'), 'mine');
    const proc = spawn(process.execPath, [VDFS_BIN, '--home', home, 'up', src, '--mount', mnt, '--webdav', '127.0.0.1:0', ...(writable ? ['--writable'] : [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    t.teardown(async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt], { timeout: 10_000 });
    });
    const started = Date.now();
    while (!out.includes('vdfs mounted at')) {
      if (proc.exitCode !== null || Date.now() - started > 60_000) throw new Error(`vdfs up did not come up: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const m = /WebDAV login: http:\/\/vdfs@127\.0\.0\.1:(\d+)\/ \(user vdfs; password: (vdfs --home \S+ webdav credentials)\)/.exec(out);
    t.ok(m, `up prints the URL with the user name and the command for the password:\n${out}`);
    const port = Number(m![1]);
    const shown = vdfsOk(home, ['webdav', 'credentials']).stdout;
    const password = /password: (\S+)/.exec(shown)![1]!;
    const auth = { Authorization: basicAuth('vdfs', password) };
    t.equal((await dav(port, 'GET', '/docs/a.txt', { anonymous: true })).status, 401, 'no credentials: 401');
    t.equal((await dav(port, 'GET', '/docs/a.txt', { headers: auth })).text, 'mine', 'the printed login works');
    const put = await dav(port, 'PUT', '/docs/authorized_keys', { headers: auth, body: 'key' });
    if (writable) {
      t.match(out, /Sharing \S+ read-write \(--writable\)/);
      t.equal(put.status, 201, '--writable: the share takes writes');
    } else {
      t.match(out, /Sharing \S+ READ-ONLY \(add --writable to allow changes\)/, 'up says it shares read-only');
      t.equal(put.status, 403, 'read-only by default: a PUT is refused');
      t.notOk(existsSync(join(src, 'authorized_keys')), 'and nothing is written');
    }
  }
});

t.test('docker/compose.yml ships no default WebDAV password and fails clearly without one', async (t) => {
  const compose = readFileSync(join(__dirname, '..', 'docker', 'compose.yml'), 'utf8');
  t.notMatch(compose, /change-me|:-[^}]*}/, 'no default value for any variable');
  for (const node of ['alpha', 'beta']) {
    t.match(compose, new RegExp(`NODE_NAME: ${node}, WEBDAV_PASSWORD: "\\$\\{WEBDAV_PASSWORD:\\?[^}]+\\}"`), `${node}: compose refuses to start without WEBDAV_PASSWORD`);
  }
  // The container's own command refuses an empty or missing password too
  const line = compose.split('\n').find((l) => l.includes('webdav user add'))!;
  const expansion = /"(\$\$\{WEBDAV_PASSWORD:\?[^}]+\})"/.exec(line)![1]!.replace('$$', '$');
  const missing = spawnSync('sh', ['-c', `printf '%s\\n' "${expansion}"`], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  t.not(missing.status, 0, 'the shell stops without WEBDAV_PASSWORD');
  t.match(missing.stderr, /set WEBDAV_PASSWORD/, 'and says what to set');
  const given = spawnSync('sh', ['-c', `printf '%s\\n' "${expansion}"`], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', WEBDAV_PASSWORD: 'a real secret' } });
  t.equal(given.stdout, 'a real secret\n', 'and passes a given one to `vdfs webdav user add`');
});
