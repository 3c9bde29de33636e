import t from 'tap';
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon, tlsProbe } from './helpers/peer';
import { dav, startWebdavServer } from './helpers/webdav';

// Issue 12 item 2 (first part): the vdfs home, and every other state folder (a separately
// configured cache.dir, staging/), never appears inside the namespace, even when a location
// contains it (the quick start shares $HOME, which holds ~/.local/share/vdfs).

/** Index rows of location `loc` whose name is one of `names` (read from the real index.db). */
function indexed(home: string, names: string[]): string[] {
  const db = new Database(join(home, 'index.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare(
        `SELECT e.name FROM entries e JOIN locations l ON l.id = e.location_id
      WHERE e.name IN (SELECT value FROM json_each(?))`,
      )
      .all(JSON.stringify(names)) as { name: string }[];
    return rows.map((r) => r.name);
  } finally {
    db.close();
  }
}

t.test('scan, index and CLI: state folders are skipped, old entries under them hidden then removed', async (t) => {
  const dir = tempDir(t);
  const loc = join(dir, 'loc');
  const home = join(loc, '.vdfs-home');
  const cache = join(loc, 'shared-cache');
  mkdirSync(join(cache, 'old'), { recursive: true });
  writeFileSync(join(cache, 'old', 'block.bin'), 'cached bytes');
  writeFileSync(join(loc, 'ok.txt'), 'ok');
  vdfsOk(home, ['init', '--name', 'hidden']);
  vdfsOk(home, ['location', 'add', 'loc', loc]);
  vdfsOk(home, ['scan']);
  t.same(indexed(home, ['.vdfs-home', 'index.db', 'config.json', 'staging', 'keys']), [], 'the home is not indexed');
  t.same(indexed(home, ['shared-cache']), ['shared-cache'], 'a plain folder is indexed');
  // It becomes the cache folder: what the index holds under it is hidden at once...
  vdfsOk(home, ['config', 'set', 'cache.dir', cache]);
  const st = vdfs(home, ['stat', '/loc/shared-cache/old/block.bin']);
  t.not(st.code, 0, 'an old entry under the cache folder is not resolved any more');
  t.notMatch(st.stdout, /block\.bin/);
  t.equal(vdfs(home, ['stat', '/loc/ok.txt']).code, 0, 'other entries still are');
  const byHash = vdfs(home, ['cat', `/.vdfs/by-hash/${b3sum(join(cache, 'old', 'block.bin'))}`]);
  t.not(byHash.code, 0, 'nor is its content readable by hash');
  t.notMatch(byHash.stdout, /cached bytes/);
  // ...and gone after the next scan.
  vdfsOk(home, ['scan']);
  t.same(indexed(home, ['shared-cache', 'old', 'block.bin']), [], 'the next scan removes it from the index');
});

t.test('WebDAV: the home and the cache inside the shared location are neither listed, read nor written', async (t) => {
  const srv = await startWebdavServer(t, {
    seed: (loc) => writeFileSync(join(loc, 'ok.txt'), 'ok'),
    homeDir: (_dir, loc) => join(loc, '.vdfs-home'),
    afterInit: (home, loc) => {
      vdfsOk(home, ['config', 'set', 'cache.dir', join(loc, 'shared-cache')]);
    },
  });
  const { port, home, locDir } = srv;
  const configBefore = readFileSync(join(home, 'config.json'), 'utf8');
  t.equal((await dav(port, 'GET', '/loc/ok.txt')).status, 200, 'a user file is served');
  for (const p of [
    '/loc/.vdfs-home/index.db',
    '/loc/.vdfs-home/config.json',
    '/loc/.vdfs-home/keys/node.key',
    '/loc/.vdfs-home/',
    '/loc/.vdfs-home/staging/',
    '/loc/shared-cache/',
  ]) {
    const r = await dav(port, 'GET', p);
    t.equal(r.status, 404, `GET ${p}`);
    t.equal((await dav(port, 'PROPFIND', p, { headers: { Depth: '0' } })).status, 404, `PROPFIND ${p}`);
  }
  const list = await dav(port, 'PROPFIND', '/loc/', { headers: { Depth: '1' } });
  t.equal(list.status, 207);
  t.notMatch(list.text, /vdfs-home|shared-cache/, 'not listed (PROPFIND)');
  t.notMatch((await dav(port, 'GET', '/loc/')).text, /vdfs-home|shared-cache/, 'not listed (HTML)');

  const writes: [string, string, Record<string, string>?][] = [
    ['PUT', '/loc/.vdfs-home/evil.txt'],
    ['PUT', '/loc/.vdfs-home/config.json'],
    ['PUT', '/loc/.vdfs-home'],
    ['PUT', '/loc/shared-cache/evil.txt'],
    ['MKCOL', '/loc/.vdfs-home/evil-dir'],
    ['MKCOL', '/loc/shared-cache'],
    ['DELETE', '/loc/.vdfs-home/index.db'],
    ['DELETE', '/loc/.vdfs-home'],
    ['COPY', '/loc/ok.txt', { Destination: '/loc/.vdfs-home/keys/evil' }],
    ['MOVE', '/loc/ok.txt', { Destination: '/loc/.vdfs-home/evil' }],
    ['MOVE', '/loc/.vdfs-home/config.json', { Destination: '/loc/stolen.json' }],
  ];
  for (const [method, p, headers] of writes) {
    const r = await dav(port, method, p, { headers, body: method === 'PUT' ? 'pwned' : undefined });
    t.ok(r.status >= 400, `${method} ${p}${headers ? ` -> ${headers.Destination}` : ''} refused (${r.status})`);
  }
  t.notOk(existsSync(join(home, 'evil.txt')), 'nothing created in the home');
  t.notOk(existsSync(join(home, 'keys', 'evil')));
  t.notOk(existsSync(join(locDir, 'shared-cache', 'evil.txt')));
  t.notOk(existsSync(join(locDir, 'stolen.json')));
  t.ok(existsSync(join(home, 'index.db')), 'index.db still there');
  t.equal(readFileSync(join(home, 'config.json'), 'utf8'), configBefore, 'config.json untouched');
  t.equal((await dav(port, 'GET', '/loc/ok.txt')).text, 'ok', 'the user file is still there');

  // The watcher: changes in the location are picked up, our own writes to the home are not.
  writeFileSync(join(locDir, 'new.txt'), 'new');
  writeFileSync(join(home, 'planted.txt'), 'in the home');
  let seen = false;
  for (const t0 = Date.now(); !seen && Date.now() - t0 < 15_000;) {
    seen = (await dav(port, 'GET', '/loc/new.txt')).status === 200;
    if (!seen) await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(seen, 'a new file in the location is indexed by the watcher');
  t.equal((await dav(port, 'GET', '/loc/.vdfs-home/planted.txt')).status, 404, 'a new file in the home is not');
  t.same(indexed(home, ['.vdfs-home', 'shared-cache', 'planted.txt', 'index.db', 'index.db-wal']), [], 'nothing of the state folders is in the index');
});

t.test('FUSE: the home inside a location is not visible and not writable', async (t) => {
  const dir = tempDir(t);
  const loc = join(dir, 'loc');
  const home = join(loc, '.vdfs-home');
  const mnt = join(dir, 'mnt');
  mkdirSync(loc);
  writeFileSync(join(loc, 'ok.txt'), 'ok');
  vdfsOk(home, ['init', '--name', 'hidden-fuse']);
  vdfsOk(home, ['location', 'add', 'loc', loc]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const ls = sh('ls', ['-a', join(mnt, 'loc')]);
  t.match(ls.stdout, /ok\.txt/);
  t.notMatch(ls.stdout, /vdfs-home/, 'not listed');
  t.not(sh('cat', [join(mnt, 'loc', '.vdfs-home', 'config.json')]).code, 0, 'not readable');
  t.not(sh('stat', [join(mnt, 'loc', '.vdfs-home')]).code, 0, 'not found');
  t.not(sh('sh', ['-c', `echo x > "$1"`, 'sh', join(mnt, 'loc', '.vdfs-home', 'evil')]).code, 0, 'no file can be created in it');
  t.not(sh('mkdir', [join(mnt, 'loc', '.vdfs-home')]).code, 0, 'and its name cannot be taken');
  t.notOk(existsSync(join(home, 'evil')));
});

t.test('peer: the home inside a shared location is not in the snapshot and its blobs are not served', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'docs');
  mkdirSync(src);
  writeFileSync(join(src, 'ok.txt'), 'ok');
  // The shared location holds the node's own home.
  const inner = join(src, '.vdfs-home');
  vdfsOk(inner, ['init', '--name', 'inner']);
  vdfsOk(inner, ['location', 'add', 'docs', src]);
  vdfsOk(inner, ['scan']);
  const b = makeNode(dir, 'beta');
  const d = await startPeerDaemon(inner);
  t.teardown(() => d.stop());
  pair(inner, b.home);
  const key = readFileSync(join(b.home, 'keys', 'node.key'), 'utf8');
  const cert = readFileSync(join(b.home, 'keys', 'node.crt'), 'utf8');
  const get = async (p: string) => (await tlsProbe(d.url, { key, cert, request: `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n` })).received;
  const snap = await get('/v1/snapshot?location=docs');
  t.match(snap, /^HTTP\/1\.1 200/);
  t.match(snap, /"path":"ok\.txt"/, 'the user file is in the snapshot');
  t.notMatch(snap, /vdfs-home/, 'the home is not');
  const cfgHash = b3sum(join(inner, 'config.json'));
  t.match(await get(`/v1/blobs/${cfgHash}`), /^HTTP\/1\.1 404/, 'config.json is not served by hash');
});
