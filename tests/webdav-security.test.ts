import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Home } from '../app/home';
import { createVfs } from '../mount/vfs';
import { providerOpener } from '../app/provider-registry';
import { hashPassword } from '../mount/webdav/auth';
import { startWebdav } from '../mount/webdav/server';
import { tempDir, vdfsOk } from './helpers/cli';
import { dav, rawRequest, rawStatus, startWebdavServer } from './helpers/webdav';

const SECRET = 'TOP-SECRET-OUTSIDE-THE-NAMESPACE';

t.test('paths never escape the namespace; hostile hosts and bodies are refused', async (t) => {
  const srv = await startWebdavServer(t, {
    seed: (dir) => {
      writeFileSync(join(dir, 'inside.txt'), 'inside');
      writeFileSync(join(dir, '..', 'secret.txt'), SECRET); // next to the location, outside it
      mkdirSync(join(dir, 'sub'));
      symlinkSync('../inside.txt', join(dir, 'sub', 'good-link'));
      symlinkSync('../secret.txt', join(dir, 'escape-link'));
      symlinkSync('../../secret.txt', join(dir, 'sub', 'escape-link2'));
      symlinkSync(join(dir, '..', 'secret.txt'), join(dir, 'abs-link'));
      symlinkSync('loop-b', join(dir, 'loop-a'));
      symlinkSync('loop-a', join(dir, 'loop-b'));
    },
  });
  const { port } = srv;
  const get = (path: string, method = 'GET', extra = '') => rawRequest(port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}Connection: close\r\n\r\n`);

  t.test('traversal in the request path', async (t) => {
    const attempts = [
      '/loc/../secret.txt',
      '/loc/%2e%2e/secret.txt',
      '/loc/%2E%2E/secret.txt',
      '/loc/.%2e/secret.txt',
      '/loc/..%2fsecret.txt',
      '/loc/..%2Fsecret.txt',
      '/loc/..%5csecret.txt',
      '/loc/..\\secret.txt',
      '/loc/%2e%2e%2fsecret.txt',
      '/../../../../etc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/loc/%252e%252e/secret.txt',
      '/loc/inside.txt/../../secret.txt',
      '/loc/..;/secret.txt',
      '/loc/%c0%ae%c0%ae/secret.txt',
    ];
    for (const p of attempts) {
      for (const method of ['GET', 'PROPFIND', 'DELETE']) {
        const r = await get(p, method, method === 'PROPFIND' ? 'Depth: 0\r\n' : '');
        t.ok([400, 404].includes(rawStatus(r)), `${method} ${p} -> ${rawStatus(r)}`);
        t.notMatch(r, SECRET, `${method} ${p} does not leak`);
      }
    }
    t.equal(rawStatus(await get('/loc/inside.txt')), 200, 'the legitimate path still works');
  });

  t.test('symlinks: followed inside their location only', async (t) => {
    const good = await dav(port, 'GET', '/loc/sub/good-link');
    t.equal(good.status, 200);
    t.equal(good.text, 'inside', 'a relative link inside the location serves its target');
    for (const p of ['/loc/escape-link', '/loc/sub/escape-link2', '/loc/abs-link', '/loc/loop-a']) {
      for (const method of ['GET', 'PROPFIND']) {
        const r = await dav(port, method, p, { headers: { Depth: '0' } });
        t.equal(r.status, 404, `${method} ${p}`);
        t.notMatch(r.text, SECRET);
      }
    }
    const list = await dav(port, 'PROPFIND', '/loc/', { headers: { Depth: '1' } });
    t.notMatch(list.text, /escape-link|abs-link|loop-a/, 'escaping and dangling links are not listed');
    const sub = await dav(port, 'PROPFIND', '/loc/sub/', { headers: { Depth: '1' } });
    t.match(sub.text, /good-link<\/D:href>.*?<D:getcontentlength>6</s, 'a good link is listed as its target');
    const html = await dav(port, 'GET', '/loc/');
    t.notMatch(html.text, /escape-link|abs-link/);
  });

  t.test('traversal in Destination', async (t) => {
    for (const d of ['/loc/../stolen.txt', `http://127.0.0.1:${port}/loc/%2e%2e/stolen.txt`, '/loc/..%2fstolen.txt', '/loc/..%5cstolen.txt', '/loc/..\\stolen.txt']) {
      for (const method of ['COPY', 'MOVE']) {
        const r = await dav(port, method, '/loc/inside.txt', { headers: { Destination: d } });
        t.equal(r.status, 400, `${method} to ${d}`);
      }
    }
    t.equal((await dav(port, 'COPY', '/loc/inside.txt', { headers: { Destination: 'http://attacker.example/loc/x' } })).status, 502, 'other host: never proxied');
  });

  t.test('DNS rebinding: a non-loopback Host is refused on a loopback server', async (t) => {
    for (const host of ['evil.example', `evil.example:${port}`, '127.0.0.1.nip.io', 'localhost.evil.example']) {
      const r = await dav(port, 'GET', '/loc/inside.txt', { headers: { Host: host } });
      t.equal(r.status, 403, host);
      t.notMatch(r.text, 'inside');
    }
    t.equal((await dav(port, 'GET', '/loc/inside.txt', { headers: { Host: `localhost:${port}` } })).status, 200);
  });

  t.test('XML bombs, oversized bodies, deep nesting, many namespaces', async (t) => {
    const bomb =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
      '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><D:propfind xmlns:D="DAV:"><D:prop><D:x>&lol2;</D:x></D:prop></D:propfind>';
    t.equal((await dav(port, 'PROPFIND', '/loc/', { headers: { Depth: '0' }, body: bomb })).status, 400, 'billion laughs');
    const xxe = `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://${join(srv.locDir, '..', 'secret.txt')}">]><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">&x;</Z:a></D:prop></D:set></D:propertyupdate>`;
    const r = await dav(port, 'PROPPATCH', '/loc/inside.txt', { body: xxe });
    t.equal(r.status, 400, 'external entity');
    t.notMatch(r.text, SECRET);
    const huge = '<D:propfind xmlns:D="DAV:"><D:allprop/>' + ' '.repeat(2 << 20) + '</D:propfind>';
    t.equal((await dav(port, 'PROPFIND', '/loc/', { headers: { Depth: '0' }, body: huge })).status, 413, 'body over the limit');
    const deep = '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">' + '<x>'.repeat(5000) + '</x>'.repeat(5000) + '</Z:a></D:prop></D:set></D:propertyupdate>';
    t.equal((await dav(port, 'PROPPATCH', '/loc/inside.txt', { body: deep })).status, 400, 'deep nesting');
    const manyNs =
      '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>' +
      Array.from({ length: 3000 }, (_, i) => `<N${i}:p xmlns:N${i}="urn:n${i}">v</N${i}:p>`).join('') +
      '</D:prop></D:set></D:propertyupdate>';
    t.equal((await dav(port, 'PROPPATCH', '/loc/inside.txt', { body: manyNs })).status, 400, 'thousands of namespaces');
    t.equal((await dav(port, 'PROPFIND', '/loc/', { headers: { Depth: '0' }, body: '<D:propfind xmlns:D="DAV:"><D:prop>' })).status, 400, 'malformed');
    t.equal((await dav(port, 'GET', '/loc/inside.txt')).text, 'inside', 'still serving');
  });

  t.test('lock count limits per resource', async (t) => {
    const body = '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
    const statuses: number[] = [];
    for (let i = 0; i < 66; i++) statuses.push((await dav(port, 'LOCK', '/loc/inside.txt', { headers: { Depth: '0', Timeout: 'Infinite' }, body })).status);
    t.equal(statuses.filter((s) => s === 200).length, 64, '64 shared locks granted');
    t.same(statuses.slice(64), [503, 503], 'then refused');
    const lock = await dav(port, 'LOCK', '/loc/other.txt', { headers: { Timeout: 'Second-999999' }, body: body.replace('shared', 'exclusive') });
    t.match(lock.text, /<D:timeout>Second-3600<\/D:timeout>/, 'timeout capped at one hour');
  });
});

t.test('binding and authentication', async (t) => {
  const dir = tempDir(t);
  const homeDir = join(dir, 'home');
  mkdirSync(join(dir, 'loc'));
  writeFileSync(join(dir, 'loc', 'f.txt'), 'authed');
  vdfsOk(homeDir, ['init', '--name', 'auth-test']);
  vdfsOk(homeDir, ['location', 'add', 'loc', join(dir, 'loc')]);
  vdfsOk(homeDir, ['scan']);
  const home = Home.open(homeDir);
  const vfs = await createVfs(home, { blocks: { get: (_k, fetch) => fetch() }, openProvider: providerOpener(home) });
  t.teardown(async () => {
    await vfs.close();
    home.close();
  });
  const users = [{ name: 'ann', scrypt: await hashPassword('pw-ann') }];
  await t.rejects(startWebdav(vfs, { host: '0.0.0.0', port: 0 }), /needs users/, 'non-loopback without users refused');
  await t.rejects(startWebdav(vfs, { host: '0.0.0.0', port: 0, users }), /needs TLS/, 'non-loopback without TLS refused');
  const srv = await startWebdav(vfs, { host: '127.0.0.1', port: 0, users });
  t.teardown(() => srv.close());
  t.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const basic = (s: string) => ({ Authorization: 'Basic ' + Buffer.from(s).toString('base64') });
  const none = await dav(srv.port, 'GET', '/loc/f.txt');
  t.equal(none.status, 401);
  t.match(String(none.headers['www-authenticate']), /^Basic realm=/);
  t.equal((await dav(srv.port, 'GET', '/loc/f.txt', { headers: basic('ann:wrong') })).status, 401);
  const ok = await dav(srv.port, 'GET', '/loc/f.txt', { headers: basic('ann:pw-ann') });
  t.equal(ok.status, 200);
  t.equal(ok.text, 'authed');
  t.equal((await dav(srv.port, 'GET', '/~vdfs/metrics')).status, 401, 'metrics need auth too');
  t.equal((await dav(srv.port, 'GET', '/~vdfs/health')).status, 200, 'health does not');

  // HTTPS with Basic auth, as a LAN share for Windows would run (self-signed cert from openssl)
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], {
    stdio: 'ignore',
    timeout: 60_000,
  });
  const tls = await startWebdav(vfs, { host: '127.0.0.1', port: 0, users, tls: { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') } });
  t.teardown(() => tls.close());
  t.match(tls.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
  const get = (auth?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: tls.port,
          path: '/loc/f.txt',
          ca: readFileSync(cert),
          servername: 'localhost',
          headers: auth ? { Authorization: 'Basic ' + Buffer.from(auth).toString('base64') } : {},
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  t.equal((await get()).status, 401, 'https without credentials');
  t.same(await get('ann:pw-ann'), { status: 200, body: 'authed' }, 'https with Basic auth');
});
