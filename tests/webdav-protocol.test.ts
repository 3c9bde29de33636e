import t from 'tap';
import { FS_ERROR_CODES } from '../core/fs-error';
import { hashPassword, verifyPassword } from '../mount/webdav/auth';
import { Authenticator } from '../mount/webdav/authenticator';
import { HttpError } from '../mount/webdav/http-error';
import { parseIfHeader, submittedTokens } from '../mount/webdav/if-header';
import { LockManager } from '../mount/webdav/locks';
import { decodeRequestPath, hrefFor, isLoopbackHost } from '../mount/webdav/paths';
import { parseRange, parseRangeHeader } from '../core/http-range';
import { STATUS_FOR_CODE } from '../mount/webdav/status';
import { parseXml, serializeChildren, findChild, DAV_NS } from '../mount/webdav/xml';
import { renderListing } from '../mount/webdav/html-listing';

function status(fn: () => unknown): number | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof HttpError) return err.status;
    throw err;
  }
}

t.test('status table maps every FsError code to an HTTP error status', async (t) => {
  for (const code of FS_ERROR_CODES) {
    const s = STATUS_FOR_CODE[code];
    t.ok(s >= 400 && s < 600, `${code} -> ${s}`);
  }
  t.equal(STATUS_FOR_CODE.ENOENT, 404);
  t.equal(STATUS_FOR_CODE.EROFS, 403);
  t.equal(STATUS_FOR_CODE.EHOSTDOWN, 503);
  t.equal(STATUS_FOR_CODE.ENOSPC, 507);
});

t.test('request paths: decoded once, traversal and encoded separators refused', async (t) => {
  t.same(decodeRequestPath('/loc/a%20b/c'), { vpath: '/loc/a b/c', trailingSlash: false });
  t.same(decodeRequestPath('/loc/dir/'), { vpath: '/loc/dir', trailingSlash: true });
  t.same(decodeRequestPath('/'), { vpath: '/', trailingSlash: false });
  t.same(decodeRequestPath('//loc//x'), { vpath: '/loc/x', trailingSlash: false });
  t.same(decodeRequestPath('http://127.0.0.1:8080/loc/%C3%BC?x=1'), { vpath: '/loc/ü', trailingSlash: false });
  t.same(decodeRequestPath('/loc/%252e%252e'), { vpath: '/loc/%2e%2e', trailingSlash: false }, 'decoded exactly once');
  for (const bad of [
    '/loc/../etc/passwd',
    '/loc/%2e%2e/x',
    '/loc/%2E%2E/x',
    '/loc/a%2fb',
    '/loc/a%2Fb',
    '/loc/a%5cb',
    '/loc/a\\b',
    '/loc/..',
    '/loc/.',
    '/loc/%2e',
    '/loc/%00',
    '/loc/%zz',
    'loc/x',
    '/loc/x#frag',
    '/loc/%0a',
  ]) {
    t.equal(
      status(() => decodeRequestPath(bad)),
      400,
      `${bad} refused`,
    );
  }
  t.equal(
    status(() => decodeRequestPath('/' + 'a'.repeat(9000))),
    414,
  );
  t.equal(hrefFor('/loc/a b/ü#?', false), '/loc/a%20b/%C3%BC%23%3F');
  t.equal(hrefFor('/loc/dir', true), '/loc/dir/');
});

t.test('loopback Host names', async (t) => {
  for (const h of ['127.0.0.1:8080', 'localhost', 'LOCALHOST:1', '[::1]:80', '127.1.2.3', 'x.localhost:9']) t.ok(isLoopbackHost(h), h);
  for (const h of [undefined, '', 'evil.example', 'evil.example:8080', '127.0.0.1.evil.example', '10.0.0.1', 'localhost.evil.com']) t.notOk(isLoopbackHost(h), String(h));
});

t.test('If header grammar', async (t) => {
  const l = parseIfHeader('(<opaquelocktoken:a> ["e1"]) (Not <DAV:no-lock> ["e2"])');
  t.same(l, [
    {
      resource: null,
      conditions: [
        { not: false, token: 'opaquelocktoken:a' },
        { not: false, etag: '"e1"' },
      ],
    },
    {
      resource: null,
      conditions: [
        { not: true, token: 'DAV:no-lock' },
        { not: false, etag: '"e2"' },
      ],
    },
  ]);
  const tagged = parseIfHeader('<http://h/loc/x> (<urn:t1>) <http://h/loc/y> (Not <urn:t2>)');
  t.equal(tagged.length, 2);
  t.equal(tagged[1]!.resource, 'http://h/loc/y');
  t.same([...submittedTokens(tagged)], ['urn:t1'], 'tokens under Not are not submitted');
  for (const bad of [
    '',
    '(',
    '()',
    '(<a>',
    '(<a> [x])',
    '(<a>) <http://h/x> (<b>)',
    '<http://h/x>',
    'garbage',
    '(Not)',
    '([unterminated)',
    `(${'<a> '.repeat(300)})`,
    'x'.repeat(20000),
  ]) {
    t.equal(
      status(() => parseIfHeader(bad)),
      400,
      `refused: ${bad.slice(0, 30)}`,
    );
  }
});

t.test('single byte ranges', async (t) => {
  t.same(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  t.same(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  t.same(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  t.same(parseRange('bytes=95-200', 100), { start: 95, end: 99 });
  t.same(parseRange('bytes=-500', 100), { start: 0, end: 99 });
  t.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
  t.equal(parseRange('bytes=0-0', 0), 'unsatisfiable');
  t.equal(parseRange('bytes=-0', 100), 'unsatisfiable');
  t.equal(parseRange('bytes=5-1', 100), null);
  t.equal(parseRange('bytes=0-1,5-6', 100), null, 'several ranges: whole entity');
  t.equal(parseRange('items=0-1', 100), null);
  t.equal(parseRange(undefined, 100), null);
  t.equal(parseRange('bytes=99999999999999999999-', 100), null);
  // The peer edge reads the same parser strictly: what WebDAV ignores is 'invalid' there.
  for (const bad of ['bytes=5-1', 'bytes=0-1,5-6', 'items=0-1', 'bytes=-', 'bytes=99999999999999999999-']) t.equal(parseRangeHeader(bad, 100), 'invalid', bad);
  t.equal(parseRangeHeader(undefined, 100), null);
  t.same(parseRangeHeader('bytes=99-', 100), { start: 99, end: 99 }, 'the last byte');
});

t.test('XML: namespaces resolved, DTDs and bombs refused, values round-trip', async (t) => {
  const x = parseXml(Buffer.from('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><Z:a xmlns:Z="urn:z"/></D:prop></D:propfind>'))!;
  t.equal(x.ns, DAV_NS);
  t.equal(x.local, 'propfind');
  const prop = findChild(x, DAV_NS, 'prop')!;
  t.equal((prop.children[0] as { ns: string }).ns, 'urn:z');
  const v = parseXml(Buffer.from('<p xmlns="urn:p"><x:v xmlns:x="urn:x">a &amp; <b y="1">c</b></x:v></p>'))!;
  t.equal(serializeChildren(v.children, 'urn:p'), '<v xmlns="urn:x">a &amp; <b xmlns="urn:p" y="1">c</b></v>', 'unprefixed b is in the outer default namespace');
  t.equal(parseXml(Buffer.from('  ')), null);
  const bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><D:propfind xmlns:D="DAV:">&lol2;</D:propfind>';
  const xxe = '<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>';
  for (const bad of [
    bomb,
    xxe,
    '<a><b></a>',
    '<a>',
    'not xml',
    '<a/><b/>',
    '<x:a/>',
    '<a xmlns:p=""><p:b/></a>',
    '<a>'.repeat(100) + '</a>'.repeat(100),
    `<a ${Array.from({ length: 600 }, (_, i) => `xmlns:n${i}="urn:${i}"`).join(' ')}/>`,
  ]) {
    t.equal(
      status(() => parseXml(Buffer.from(bad))),
      400,
      `refused: ${bad.slice(0, 40)}`,
    );
  }
});

t.test('locks: conflicts, depth infinity, shared, caps, timeouts', async (t) => {
  let now = 1_000_000;
  const lm = new LockManager({ maxTimeoutSec: 3600, maxPerResource: 3, maxTotal: 5 }, () => now);
  t.equal(lm.parseTimeout('Second-7200'), 3600);
  t.equal(lm.parseTimeout('Infinite, Second-4100000000'), 3600);
  t.equal(lm.parseTimeout('Second-60'), 60);
  const coll = lm.create('/loc/dir', 'infinity', 'exclusive', '', 60);
  t.equal(
    status(() => lm.create('/loc/dir/f', 0, 'shared', '', 60)),
    423,
    'inside an exclusive infinity lock',
  );
  t.equal(
    status(() => lm.assertCanModify('/loc/dir/f', new Set())),
    423,
  );
  t.equal(
    status(() => lm.assertCanModify('/loc/dir/f', new Set([coll.token]))),
    'ok',
  );
  t.equal(
    status(() => lm.assertCanModify('/loc', new Set(), true)),
    423,
    'subtree check sees the lock below',
  );
  t.equal(
    status(() => lm.assertCanModify('/loc/other', new Set())),
    'ok',
  );
  now += 61_000;
  t.equal(lm.size, 0, 'expired');
  const s1 = lm.create('/loc/f', 0, 'shared', '', 60);
  lm.create('/loc/f', 0, 'shared', '', 60);
  lm.create('/loc/f', 0, 'shared', '', 60);
  t.equal(
    status(() => lm.create('/loc/f', 0, 'shared', '', 60)),
    503,
    'per-resource cap',
  );
  t.equal(
    status(() => lm.create('/loc/f', 0, 'exclusive', '', 60)),
    423,
  );
  lm.create('/loc/g', 0, 'exclusive', '', 60);
  lm.create('/loc/h', 0, 'exclusive', '', 60);
  t.equal(
    status(() => lm.create('/loc/i', 0, 'exclusive', '', 60)),
    503,
    'total cap',
  );
  t.ok(lm.remove(s1.token));
  lm.removeWithin('/loc');
  t.equal(lm.size, 0);
});

t.test('passwords: scrypt hashes verify; Basic auth checks them', async (t) => {
  const h = await hashPassword('s3cret');
  t.match(h, /^scrypt\$16384\$8\$5\$/, 'OWASP parameters: N=2^14, r=8, p=5');
  t.ok(await verifyPassword('s3cret', h));
  t.notOk(await verifyPassword('wrong', h));
  t.notOk(await verifyPassword('s3cret', 'garbage'));
  const auth = new Authenticator([{ name: 'ann', scrypt: h }], undefined);
  const basic = (s: string) => 'Basic ' + Buffer.from(s).toString('base64');
  const check = (authorization: string | undefined) => auth.check({ authorization, method: 'GET', url: '/', address: '192.0.2.1' }).catch((e: HttpError) => e.status);
  t.equal(await check(basic('ann:s3cret')), 'ann');
  t.equal(await check(basic('ann:s3cret')), 'ann', 'cached');
  t.equal(await check(basic('ann:nope')), 401);
  t.equal(await check(basic('bob:s3cret')), 401);
  t.equal(await check(undefined), 401);
  t.equal(await check('Bearer x'), 401);
});

t.test('HTML listing escapes every name', async (t) => {
  const attr = { ino: 1, type: 'file' as const, mode: 0o644, size: 1, mtimeMs: 0, ctimeMs: 0, atimeMs: 0, nlink: 1, uid: 0, gid: 0, hash: null, etag: '"x"', readonly: false };
  const html = renderListing('/loc', [{ name: '<img src=x onerror=alert(1)>"\'&', attr }]);
  t.notMatch(html, /<img/);
  t.match(html, />&lt;img src=x onerror=alert\(1\)&gt;&quot;&#39;&amp;</);
  t.match(html, /href="\/loc\/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%22%27%26"/);
});
