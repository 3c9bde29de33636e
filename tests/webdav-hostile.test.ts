import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dav, metric, rawRequest, rawStatus, startWebdavServer } from './helpers/webdav';

/** A small deterministic PRNG so a failing fuzz case can be replayed from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'PROPFIND', 'PROPPATCH', 'LOCK', 'UNLOCK', 'OPTIONS', 'POST', 'BREW', 'TRACE', 'X'.repeat(40)];
const PATHS = [
  '/loc/f.txt',
  '/loc/',
  '/loc/dir/',
  '/loc/new',
  '/',
  '/nope/x',
  '/loc/%',
  '/loc/%2e%2e',
  '/loc/a\\b',
  '/loc/\u00e9',
  '/loc/' + 'x'.repeat(300),
  '*',
  '/loc/f.txt?x=1',
  '/~vdfs/metrics',
];
const HEADERS: [string, string[]][] = [
  ['If', ['(<opaquelocktoken:x>)', '(', '<a> (', '(Not)', '([""])', '(<DAV:no-lock>) (["x"])', '<http://127.0.0.1/loc/f.txt> (<a>)', ')))(((', '(' + '<a>'.repeat(400) + ')']],
  ['Depth', ['0', '1', 'infinity', '2', '-1', '', 'banana']],
  ['Range', ['bytes=0-0', 'bytes=-1', 'bytes=999999999-', 'bytes=5-1', 'bytes=0-1,2-3', 'bytes=', 'kilobytes=1-2', 'bytes=--']],
  ['Destination', ['/loc/d', 'http://127.0.0.1/loc/d', 'http://evil/loc/d', '/loc/../d', '::::', '']],
  ['Timeout', ['Second-1', 'Infinite', 'Second-', 'Second-99999999999999999999', 'x']],
  ['Overwrite', ['T', 'F', 'maybe']],
  ['Lock-Token', ['<opaquelocktoken:x>', 'x', '<>', '']],
  ['If-Match', ['*', '"x"', 'W/"x"', ',,,']],
  ['Content-Type', ['text/xml', 'application/xml; charset=utf-16']],
];
const BODIES = [
  '',
  '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
  '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>',
  '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">1</Z:a></D:prop></D:set><D:remove><D:prop><Z:a xmlns:Z="urn:z"/></D:prop></D:remove></D:propertyupdate>',
  '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:set/></D:prop></D:set></D:propertyupdate>',
  '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>x</D:href></D:owner></D:lockinfo>',
  '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:bogus/></D:lockscope></D:lockinfo>',
  '<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
  '<a xmlns:p=""><p:b/></a>',
  '\u0000\u0001\u0002<<<>>>',
  '<x>' + '<y>'.repeat(200) + '</x>',
  '<D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/><D:lockdiscovery/></D:prop></D:propfind>',
];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

/** Flips a few bytes of a body, so the parser sees text that is almost XML. */
function mutate(r: () => number, s: string): string {
  const b = Buffer.from(s);
  for (let i = 0; i < 1 + Math.floor(r() * 4) && b.length > 0; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
  return b.toString('latin1');
}

t.test('hostile requests never take the server down or leak handles', async (t) => {
  const srv = await startWebdavServer(t, {
    seed: (dir) => {
      writeFileSync(join(dir, 'f.txt'), 'the file');
    },
  });
  const { port } = srv;
  const host = `Host: 127.0.0.1:${port}\r\n`;

  t.test('fixed cases', async (t) => {
    const cases: [string, string, number[]][] = [
      // Node's HTTP parser refuses methods it does not know before we see them (400);
      // methods it knows that WebDAV does not define reach us and get 501.
      ['unknown method', `BREW /loc/f.txt HTTP/1.1\r\n${host}Connection: close\r\n\r\n`, [400]],
      ['known HTTP method we do not implement', `PURGE /loc/f.txt HTTP/1.1\r\n${host}Connection: close\r\n\r\n`, [501]],
      ['another one', `LINK /loc/f.txt HTTP/1.1\r\n${host}Connection: close\r\n\r\n`, [501]],
      ['POST is not allowed', `POST /loc/f.txt HTTP/1.1\r\n${host}Content-Length: 0\r\nConnection: close\r\n\r\n`, [405]],
      ['range past the end', `GET /loc/f.txt HTTP/1.1\r\n${host}Range: bytes=100-200\r\nConnection: close\r\n\r\n`, [416]],
      ['bogus If header', `PUT /loc/f.txt HTTP/1.1\r\n${host}If: (<unterminated\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`, [400]],
      ['If on unlocked resource with no-lock', `PUT /loc/f.txt HTTP/1.1\r\n${host}If: (<DAV:no-lock>)\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`, [412]],
      ['UNLOCK with an unknown token', `UNLOCK /loc/f.txt HTTP/1.1\r\n${host}Lock-Token: <opaquelocktoken:nope>\r\nConnection: close\r\n\r\n`, [409]],
      ['bad chunked encoding', `PUT /loc/g.txt HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, [400]],
      ['garbage request line', 'GARBAGE\r\n\r\n', [400]],
      ['header flood', `GET /loc/f.txt HTTP/1.1\r\n${host}X-A: ${'b'.repeat(64 * 1024)}\r\nConnection: close\r\n\r\n`, [431]],
      [
        'PROPPATCH with two set blocks (crashed webdav-server)',
        `PROPPATCH /loc/f.txt HTTP/1.1\r\n${host}Content-Type: text/xml\r\nContent-Length: ${Buffer.byteLength(BODIES[3]! + BODIES[3]!)}\r\nConnection: close\r\n\r\n${BODIES[3]}${BODIES[3]}`,
        [400],
      ],
      ['Depth infinity PROPFIND', `PROPFIND /loc/ HTTP/1.1\r\n${host}Depth: infinity\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, [403]],
      ['missing Host', `GET /loc/f.txt HTTP/1.1\r\nConnection: close\r\n\r\n`, [400, 403]],
    ];
    for (const [name, req, want] of cases) {
      const s = rawStatus(await rawRequest(port, req));
      t.ok(want.includes(s), `${name}: ${s} (want ${want.join('/')})`);
    }
    t.equal((await dav(port, 'GET', '/loc/f.txt')).text, 'the file', 'the file is intact');
  });

  t.test('bounded random fuzz of malformed requests', async (t) => {
    const seed = Number(process.env.VDFS_FUZZ_SEED ?? 20261125);
    const r = rng(seed);
    const statuses = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const method = pick(r, METHODS);
      let path = pick(r, PATHS);
      if (r() < 0.2) path = mutate(r, path).replace(/[\r\n ]/g, '_');
      const headers: string[] = [];
      for (const [name, values] of HEADERS) if (r() < 0.3) headers.push(`${name}: ${r() < 0.15 ? mutate(r, pick(r, values)).replace(/[\r\n]/g, '') : pick(r, values)}`);
      let body = pick(r, BODIES);
      if (r() < 0.4) body = mutate(r, body);
      const req = `${method} ${path} HTTP/1.1\r\n${host}${headers.map((h) => h + '\r\n').join('')}Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\nConnection: close\r\n\r\n`;
      const resp = await rawRequest(port, Buffer.concat([Buffer.from(req, 'latin1'), Buffer.from(body, 'latin1')]), 10_000);
      const s = rawStatus(resp);
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
      if (s === 0 || (s >= 500 && s !== 501 && s !== 502 && s !== 503)) {
        t.fail(`seed ${seed} case ${i}: ${method} ${JSON.stringify(path)} ${JSON.stringify(headers)} -> ${s || 'no answer'}\n${resp.slice(0, 300)}`);
      }
      if (srv.proc.exitCode !== null) {
        t.fail(`server died at seed ${seed} case ${i}`);
        break;
      }
    }
    t.comment(`statuses: ${JSON.stringify([...statuses].sort((a, b) => a[0] - b[0]))}`);
    t.equal(srv.proc.exitCode, null, 'server process alive');
    const health = await dav(port, 'GET', '/~vdfs/health');
    t.equal(health.status, 200, 'health still answers');
    t.equal(await metric(port, 'vdfs_webdav_open_handles'), 0, 'no VFS handle leaked');
    t.equal(await metric(port, 'vdfs_webdav_requests_in_flight'), 0, 'no request stuck');
  });
});
