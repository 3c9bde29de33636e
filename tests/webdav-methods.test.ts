import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { authHeaderFor, dav, metric, startWebdavServer } from './helpers/webdav';

const BIG = randomBytes(3 * 1024 * 1024 + 12345);
/** Bigger than a loopback socket's buffers: a client that stops reading leaves chunks queued in the server. */
const HUGE = randomBytes(24 * 1024 * 1024);

function seed(dir: string): void {
  writeFileSync(join(dir, 'big.bin'), BIG);
  writeFileSync(join(dir, 'huge.bin'), HUGE);
  // what a daemon killed mid-PUT a day ago left behind
  writeFileSync(join(dir, '.vdfs-put-0123456789abcdef'), 'partial');
  utimesSync(join(dir, '.vdfs-put-0123456789abcdef'), new Date(Date.now() - 86400_000), new Date(Date.now() - 86400_000));
  writeFileSync(join(dir, 'hello.txt'), 'hello world\n');
  writeFileSync(join(dir, 'caf\u00e9.txt'), 'nfc name'); // NFC, as Linux tools write it
  mkdirSync(join(dir, 'docs'));
  writeFileSync(join(dir, 'docs', '<b>x&y"q.txt'), 'escaped');
}

t.test('WebDAV methods against the real VFS', async (t) => {
  const srv = await startWebdavServer(t, { seed, otherLocations: ['second'], readonlyLocations: ['ro'] });
  const { port } = srv;

  t.test('OPTIONS answers class 1 and 2 on any URL, with 200', async (t) => {
    for (const path of ['/', '*', '/loc/', '/loc/nothing-here']) {
      const r = await dav(port, 'OPTIONS', path);
      t.equal(r.status, 200, path);
      t.equal(r.headers['dav'], '1, 2');
      t.equal(r.headers['ms-author-via'], 'DAV');
      t.match(String(r.headers['allow']), /PROPFIND.*LOCK/);
    }
  });

  t.test('GET, HEAD, byte ranges and 416', async (t) => {
    const full = await dav(port, 'GET', '/loc/big.bin');
    t.equal(full.status, 200);
    t.ok(full.body.equals(BIG), 'whole body');
    t.equal(full.headers['accept-ranges'], 'bytes');
    const etag = String(full.headers['etag']);
    t.match(etag, /^"[^"W/][^"]*"$/, 'a strong ETag');
    const mid = 1_500_000;
    const r = await dav(port, 'GET', '/loc/big.bin', { headers: { Range: `bytes=${mid}-${mid + (1 << 20) - 1}` } });
    t.equal(r.status, 206);
    t.equal(r.headers['content-range'], `bytes ${mid}-${mid + (1 << 20) - 1}/${BIG.length}`);
    t.ok(r.body.equals(BIG.subarray(mid, mid + (1 << 20))), 'exact middle range');
    const last = await dav(port, 'GET', '/loc/big.bin', { headers: { Range: 'bytes=-7' } });
    t.ok(last.body.equals(BIG.subarray(BIG.length - 7)), 'suffix range');
    const lastByte = await dav(port, 'GET', '/loc/big.bin', { headers: { Range: `bytes=${BIG.length - 1}-` } });
    t.equal(lastByte.body.length, 1);
    t.equal(lastByte.body[0], BIG[BIG.length - 1]);
    const past = await dav(port, 'GET', '/loc/big.bin', { headers: { Range: `bytes=${BIG.length}-` } });
    t.equal(past.status, 416);
    t.equal(past.headers['content-range'], `bytes */${BIG.length}`);
    const head = await dav(port, 'HEAD', '/loc/big.bin');
    t.equal(head.status, 200);
    t.equal(head.headers['content-length'], String(BIG.length));
    t.equal(head.body.length, 0);
    t.equal((await dav(port, 'GET', '/loc/big.bin', { headers: { 'If-None-Match': etag } })).status, 304);
    t.equal((await dav(port, 'GET', '/loc/big.bin', { headers: { 'If-Modified-Since': new Date(Date.now() + 60_000).toUTCString() } })).status, 304);
    const ifRange = await dav(port, 'GET', '/loc/big.bin', { headers: { Range: 'bytes=0-9', 'If-Range': '"stale"' } });
    t.equal(ifRange.status, 200, 'If-Range mismatch sends everything');
    t.equal((await dav(port, 'GET', '/loc/missing')).status, 404);
    t.equal(await metric(port, 'vdfs_webdav_open_handles'), 0, 'no handle left open');
  });

  // Every GET takes its chunks from one shared pool: a chunk still waiting in a stalled
  // client's socket must never be handed to another GET and overwritten.
  t.test('GETs share chunk buffers: stalled readers still get exact bytes', async (t) => {
    const stalled = Array.from({ length: 4 }, () => {
      const chunks: Buffer[] = [];
      let resume!: () => void;
      const done = new Promise<Buffer>((resolve, reject) => {
        const req = request({ port, path: '/loc/huge.bin', headers: { authorization: authHeaderFor(port) } }, (res) => {
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
          res.pause();
          resume = () => res.resume();
        });
        req.on('error', reject);
        req.end();
      });
      return { done, resume: () => resume() };
    });
    await new Promise((r) => setTimeout(r, 200)); // their first chunks are read and queued behind full sockets
    // Two GETs cut by their client after the first bytes (a player seeking): the chunks they had read ahead go back to the pool.
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request({ port, path: '/loc/huge.bin', headers: { authorization: authHeaderFor(port) } }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
        req.end();
      });
    }
    for (let i = 0; i < 12; i++) {
      const at = (i * 257_123) % (BIG.length - (1 << 20));
      const r = await dav(port, 'GET', '/loc/big.bin', { headers: { Range: `bytes=${at}-${at + (1 << 20) - 1}` } });
      t.ok(r.body.equals(BIG.subarray(at, at + (1 << 20))), `range at ${at} exact while others stall`);
    }
    for (const s of stalled) s.resume();
    const bodies = await Promise.all(stalled.map((s) => s.done));
    bodies.forEach((b, i) => t.ok(b.equals(HUGE), `stalled GET ${i}: whole body exact`));
    t.equal(await metric(port, 'vdfs_webdav_open_handles'), 0, 'no handle left open');
  });

  t.test('names sent in NFD (macOS) find files stored in NFC', async (t) => {
    const nfd = encodeURIComponent('cafe\u0301.txt');
    const r = await dav(port, 'GET', `/loc/${nfd}`);
    t.equal(r.status, 200);
    t.equal(r.text, 'nfc name');
    t.equal((await dav(port, 'PROPFIND', `/loc/${nfd}`, { headers: { Depth: '0' } })).status, 207);
  });

  t.test('browser GET on a collection: HTML listing with escaped names', async (t) => {
    const r = await dav(port, 'GET', '/loc/docs/');
    t.equal(r.status, 200);
    t.match(String(r.headers['content-type']), /text\/html/);
    t.match(r.text, /&lt;b&gt;x&amp;y&quot;q\.txt/);
    t.notMatch(r.text, /<b>x/);
  });

  t.test('PUT: chunked with X-Expected-Entity-Length (Finder), 201 then 204, gvfs If-Match', async (t) => {
    const body = randomBytes(2 * 1024 * 1024 + 3);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'PUT',
          path: '/loc/finder.bin',
          headers: { Authorization: authHeaderFor(port), 'Transfer-Encoding': 'chunked', 'X-Expected-Entity-Length': String(body.length) },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      for (let i = 0; i < body.length; i += 100_000) req.write(body.subarray(i, i + 100_000));
      req.end();
    });
    t.equal(status, 201);
    t.ok(readFileSync(join(srv.locDir, 'finder.bin')).equals(body), 'bytes on disk');
    const again = await dav(port, 'PUT', '/loc/finder.bin', { body: 'v2' });
    t.equal(again.status, 204);
    const etag = String((await dav(port, 'HEAD', '/loc/finder.bin')).headers['etag']);
    t.equal((await dav(port, 'PUT', '/loc/finder.bin', { body: 'v3', headers: { 'If-Match': etag } })).status, 204, 'gvfs replace with If-Match');
    t.equal((await dav(port, 'PUT', '/loc/finder.bin', { body: 'v4', headers: { 'If-Match': etag } })).status, 412, 'stale ETag refused');
    t.equal(readFileSync(join(srv.locDir, 'finder.bin'), 'utf8'), 'v3');
    t.equal((await dav(port, 'PUT', '/loc/finder.bin', { body: 'v5', headers: { 'If-None-Match': '*' } })).status, 412);
    const lm = (await dav(port, 'HEAD', '/loc/finder.bin')).headers['last-modified'];
    t.equal(
      (await dav(port, 'PUT', '/loc/finder.bin', { body: 'v6', headers: { 'If-Unmodified-Since': new Date(Date.parse(String(lm)) - 3600_000).toUTCString() } })).status,
      412,
      'If-Unmodified-Since',
    );
    t.equal((await dav(port, 'PUT', '/loc/finder.bin', { body: 'v3', headers: { 'If-Unmodified-Since': String(lm) } })).status, 204);
    const short = await dav(port, 'PUT', '/loc/short.bin', { body: 'abc', headers: { 'X-Expected-Entity-Length': '10', 'Transfer-Encoding': 'chunked' } });
    t.equal(short.status, 400, 'a body shorter than announced is not stored');
    t.notOk(existsSync(join(srv.locDir, 'short.bin')));
    t.equal((await dav(port, 'PUT', '/loc/no/parent.txt', { body: 'x' })).status, 409);
    const oc = await dav(port, 'PUT', '/loc/oc.txt', { body: 'oc', headers: { 'X-OC-Mtime': '1700000000' } });
    t.equal(oc.headers['x-oc-mtime'], 'accepted');
    t.equal(statSync(join(srv.locDir, 'oc.txt')).mtimeMs, 1700000000_000, 'X-OC-Mtime applied');
    t.equal((await dav(port, 'PUT', '/loc/docs', { body: 'x' })).status, 405);
  });

  t.test('Finder junk is never stored and answered without the index', async (t) => {
    for (const name of ['._finder.bin', '.DS_Store']) {
      t.equal((await dav(port, 'PUT', `/loc/${name}`, { body: 'junk' })).status, 201, `PUT ${name} accepted`);
      t.notOk(existsSync(join(srv.locDir, name)), `${name} not on disk`);
      t.equal((await dav(port, 'PROPFIND', `/loc/${name}`, { headers: { Depth: '0' } })).status, 404);
      t.equal((await dav(port, 'GET', `/loc/${name}`)).status, 404);
    }
    for (const marker of ['.ql_disablethumbnails', '.metadata_never_index']) {
      const pf = await dav(port, 'PROPFIND', `/loc/${marker}`, { headers: { Depth: '0' } });
      t.equal(pf.status, 207, `${marker} exists for Finder`);
      t.match(pf.text, /<D:getcontentlength>0<\/D:getcontentlength>/);
      const g = await dav(port, 'GET', `/loc/${marker}`);
      t.equal(g.status, 200);
      t.equal(g.body.length, 0);
      t.notOk(existsSync(join(srv.locDir, marker)), 'virtual, not on disk');
    }
  });

  t.test('PROPFIND: Depth 0/1, finite depth only, quota, Win32 PROPPATCH', async (t) => {
    const inf = await dav(port, 'PROPFIND', '/loc/', { headers: { Depth: 'infinity' } });
    t.equal(inf.status, 403);
    t.match(inf.text, /propfind-finite-depth/);
    const one = await dav(port, 'PROPFIND', '/loc/', { headers: { Depth: '1' } });
    t.equal(one.status, 207);
    t.match(one.text, /<D:href>\/loc\/big\.bin<\/D:href>/);
    t.match(one.text, /<D:href>\/loc\/docs\/<\/D:href>/);
    t.notMatch(one.text, /vdfs-put-/, 'no upload temporaries listed');
    for (let i = 0; i < 50 && existsSync(join(srv.locDir, '.vdfs-put-0123456789abcdef')); i++) await new Promise((r) => setTimeout(r, 50));
    t.notOk(existsSync(join(srv.locDir, '.vdfs-put-0123456789abcdef')), 'a stale upload temporary is removed by a listing');
    const q = await dav(port, 'PROPFIND', '/loc/', {
      headers: { Depth: '0' },
      body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/><D:getetag/><X:nope xmlns:X="urn:x"/></D:prop></D:propfind>',
    });
    t.equal(q.status, 207);
    t.match(q.text, /<D:quota-available-bytes>\d+<\/D:quota-available-bytes>/);
    t.match(q.text, /<D:quota-used-bytes>\d+<\/D:quota-used-bytes>/);
    t.match(q.text, /404 Not Found/);
    const win = await dav(port, 'PROPPATCH', '/loc/hello.txt', {
      body:
        '<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>' +
        '<Z:Win32CreationTime>Wed, 25 Nov 2026 10:00:00 GMT</Z:Win32CreationTime><Z:Win32LastAccessTime>Wed, 25 Nov 2026 10:00:00 GMT</Z:Win32LastAccessTime>' +
        '<Z:Win32LastModifiedTime>Wed, 25 Nov 2026 10:00:00 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>',
    });
    t.equal(win.status, 207);
    t.notMatch(win.text, /HTTP\/1.1 [45]/, 'every Win32 property accepted');
    const back = await dav(port, 'PROPFIND', '/loc/hello.txt', { headers: { Depth: '0' }, body: '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>' });
    t.match(back.text, /Win32FileAttributes xmlns:R="urn:schemas-microsoft-com:">00000020</);
    t.equal(statSync(join(srv.locDir, 'hello.txt')).mtime.toISOString(), '2026-11-25T10:00:00.000Z', 'Win32LastModifiedTime applied');
    const prot = await dav(port, 'PROPPATCH', '/loc/hello.txt', {
      body: '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getetag>x</D:getetag><D:foo>1</D:foo></D:prop></D:set></D:propertyupdate>',
    });
    t.match(prot.text, /403 Forbidden/);
    t.match(prot.text, /424 Failed Dependency/);
    const after = await dav(port, 'PROPFIND', '/loc/hello.txt', { headers: { Depth: '0' }, body: '<D:propfind xmlns:D="DAV:"><D:prop><D:foo/></D:prop></D:propfind>' });
    t.match(after.text, /404 Not Found/, 'atomic: nothing stored when one property failed');
  });

  t.test('MKCOL, COPY, MOVE across locations (EXDEV fallback), Destination rules', async (t) => {
    t.equal((await dav(port, 'MKCOL', '/loc/newdir/')).status, 201);
    t.equal((await dav(port, 'MKCOL', '/loc/newdir/')).status, 405);
    t.equal((await dav(port, 'MKCOL', '/loc/a/b/')).status, 409);
    t.equal((await dav(port, 'MKCOL', '/loc/withbody/', { body: '<x/>' })).status, 415);
    const dest = (p: string) => ({ Destination: `http://127.0.0.1:${port}${p}` });
    t.equal((await dav(port, 'COPY', '/loc/big.bin', { headers: dest('/loc/newdir/copy.bin') })).status, 201);
    t.ok(readFileSync(join(srv.locDir, 'newdir', 'copy.bin')).equals(BIG));
    t.equal((await dav(port, 'COPY', '/loc/hello.txt', { headers: { ...dest('/loc/newdir/copy.bin'), Overwrite: 'F' } })).status, 412);
    for (const m of ['MOVE', 'COPY']) {
      t.equal((await dav(port, m, '/loc/newdir/copy.bin', { headers: dest('/loc/newdir/') })).status, 403, `${m} onto the collection holding it`);
      t.ok(readFileSync(join(srv.locDir, 'newdir', 'copy.bin')).equals(BIG), `${m} onto its own collection deleted nothing`);
    }
    t.equal((await dav(port, 'MOVE', '/loc/newdir/', { headers: dest('/second/moved/') })).status, 201, 'MOVE across locations');
    t.notOk(existsSync(join(srv.locDir, 'newdir')));
    t.ok(readFileSync(join(srv.locDir, '..', 'second', 'moved', 'copy.bin')).equals(BIG));
    t.equal((await dav(port, 'COPY', '/loc/hello.txt', { headers: { Destination: 'http://elsewhere.example/loc/x' } })).status, 502);
    t.equal((await dav(port, 'COPY', '/loc/hello.txt', { headers: { Destination: '/loc/../../x' } })).status, 400);
    t.equal((await dav(port, 'COPY', '/loc/hello.txt')).status, 400, 'no Destination');
    t.equal((await dav(port, 'DELETE', '/second/moved/')).status, 204);
    t.same(readdirSync(join(srv.locDir, '..', 'second')), []);
  });

  t.test('client disconnects mid-PUT and mid-GET leave no partial file and no handle', async (t) => {
    writeFileSync(join(srv.locDir, 'keep.txt'), 'old content');
    await dav(port, 'PUT', '/loc/keep.txt', { body: 'old content' });
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/loc/keep.txt', headers: { Authorization: authHeaderFor(port), 'Content-Length': String(10 << 20) } });
      req.on('error', () => resolve());
      req.write(randomBytes(3 << 20));
      // Cut off once the server is really writing the body (its temporary file exists), not after a guessed 300 ms.
      const cut = () => {
        req.destroy();
        resolve();
      };
      const started = Date.now();
      const poll = () => {
        if (readdirSync(srv.locDir).some((n) => n.startsWith('.vdfs-put-')) || Date.now() - started > 10_000) cut();
        else setTimeout(poll, 5);
      };
      poll();
    });
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'GET', path: '/loc/big.bin', headers: { Authorization: authHeaderFor(port) } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => resolve());
      req.end();
    });
    let handles = -1;
    for (let i = 0; i < 50 && handles !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      handles = await metric(port, 'vdfs_webdav_open_handles');
    }
    t.equal(handles, 0, 'handles released');
    t.equal(readFileSync(join(srv.locDir, 'keep.txt'), 'utf8'), 'old content', 'old content kept');
    t.same(
      readdirSync(srv.locDir).filter((n) => n.startsWith('.vdfs-put-')),
      [],
      'no temporary left behind',
    );
    t.equal((await dav(port, 'GET', '/loc/hello.txt')).text, 'hello world\n', 'server still answers');
  });

  t.test('read-only location: locks granted (Windows hangs otherwise), writes refused with 403', async (t) => {
    const lockBody = '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
    const lock = await dav(port, 'LOCK', '/ro/new.txt', { body: lockBody });
    t.equal(lock.status, 200, 'lock granted on an unmapped URL, nothing created');
    const token = String(lock.headers['lock-token']);
    t.match(token, /^<opaquelocktoken:/);
    t.equal((await dav(port, 'PUT', '/ro/new.txt', { body: 'x', headers: { If: `(${token})` } })).status, 403);
    t.notOk(existsSync(join(srv.locDir, '..', 'ro', 'new.txt')));
    t.equal((await dav(port, 'UNLOCK', '/ro/new.txt', { headers: { 'Lock-Token': token } })).status, 204);
    const l2 = await dav(port, 'LOCK', '/ro/existing.txt', { body: lockBody });
    t.equal(l2.status, 200, 'lock on an existing read-only file');
    t.equal((await dav(port, 'PUT', '/ro/other.txt', { body: 'x' })).status, 403);
    t.equal((await dav(port, 'MKCOL', '/ro/d/')).status, 403);
    t.equal((await dav(port, 'DELETE', '/ro/existing.txt')).status, 423, 'without the token the lock answers first');
    t.equal((await dav(port, 'DELETE', '/ro/existing.txt', { headers: { If: `(${String(l2.headers['lock-token'])})` } })).status, 403, 'with it, the read-only location refuses');
    t.equal((await dav(port, 'GET', '/ro/existing.txt')).text, 'read only');
  });

  t.test('/~vdfs/health and /~vdfs/metrics', async (t) => {
    const h = await dav(port, 'GET', '/~vdfs/health');
    t.equal(h.status, 200);
    t.equal(JSON.parse(h.text).ok, true);
    const m = await dav(port, 'GET', '/~vdfs/metrics');
    t.match(m.text, /vdfs_webdav_requests_total\{method="GET",status="206"\} \d+/);
    t.match(m.text, /vdfs_webdav_request_seconds_count\{method="PROPFIND"\} \d+/);
    t.match(m.text, /vdfs_webdav_request_seconds_bucket\{method="GET",le="\+Inf"\} \d+/);
    t.match(m.text, /# TYPE vdfs_webdav_request_seconds histogram/);
    t.ok((await metric(port, 'vdfs_webdav_sent_bytes_total')) >= BIG.length);
  });
});
