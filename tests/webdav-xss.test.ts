import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dav, startWebdavServer } from './helpers/webdav';

// Issue 12 item 1: a web page stored in a location must not run script on the share's
// origin (it could PUT ~/.ssh/authorized_keys with the browser's cached credentials).
const SCRIPT = '<script>fetch("/loc/x", { method: "PUT", body: "pwned" })</script>';
const ACTIVE: Record<string, string> = {
  'evil.html': `<!DOCTYPE html><html><body>${SCRIPT}</body></html>`,
  'evil.htm': `<html>${SCRIPT}</html>`,
  'evil.svg': `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>`,
  'evil.xml': `<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>`,
  'evil.xhtml': `<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>`,
  'looks-like-text.txt': `<html>${SCRIPT}</html>`,
  'no-extension': `<html>${SCRIPT}</html>`,
};

/** The sandbox directive of a CSP header, alone or among others. */
function sandboxed(csp: unknown): boolean {
  return typeof csp === 'string' && csp.split(';').some((d) => d.trim().split(/\s+/)[0]!.toLowerCase() === 'sandbox' && !/allow-scripts|allow-same-origin/.test(d));
}

t.test('user content never runs script on the share origin; the listing has none but previews images and video', async (t) => {
  const srv = await startWebdavServer(t, {
    seed: (dir) => {
      for (const [name, body] of Object.entries(ACTIVE)) writeFileSync(join(dir, name), body);
      writeFileSync(join(dir, 'pic.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
      writeFileSync(join(dir, 'clip.mp4'), Buffer.alloc(64));
      writeFileSync(join(dir, '<img src=x onerror=alert(1)>.png'), 'x');
    },
  });

  for (const name of [...Object.keys(ACTIVE), 'pic.png', 'clip.mp4']) {
    for (const method of ['GET', 'HEAD']) {
      const r = await dav(srv.port, method, `/loc/${name}`);
      t.equal(r.status, 200, `${method} ${name}`);
      t.ok(sandboxed(r.headers['content-security-policy']), `${method} ${name}: CSP sandbox without scripts (${r.headers['content-security-policy']})`);
      t.equal(r.headers['x-content-type-options'], 'nosniff', `${method} ${name}: nosniff`);
    }
  }
  // Types that can carry script are downloads, not pages, even for a browser without CSP sandbox
  for (const name of ['evil.html', 'evil.htm', 'evil.svg', 'evil.xml', 'evil.xhtml']) {
    const r = await dav(srv.port, 'GET', `/loc/${name}`);
    t.match(r.headers['content-disposition'], /^attachment/, `${name} is served as an attachment`);
  }
  // A range request of user content carries the same headers
  const ranged = await dav(srv.port, 'GET', '/loc/evil.html', { headers: { Range: 'bytes=0-5' } });
  t.equal(ranged.status, 206);
  t.ok(sandboxed(ranged.headers['content-security-policy']), 'ranged GET sandboxed too');

  // Every response says nosniff, errors and XML included
  for (const [method, path] of [
    ['GET', '/loc/missing'],
    ['PROPFIND', '/loc/'],
    ['OPTIONS', '/'],
    ['BREW', '/loc/'],
  ] as const) {
    const r = await dav(srv.port, method, path, { headers: { Depth: '0' } });
    t.equal(r.headers['x-content-type-options'], 'nosniff', `${method} ${path} (${r.status}): nosniff`);
  }

  const list = await dav(srv.port, 'GET', '/loc/');
  t.equal(list.status, 200);
  const csp = String(list.headers['content-security-policy'] ?? '');
  const directives = new Map(
    csp
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map((d) => [d[0]!.toLowerCase(), d.slice(1)]),
  );
  t.same(directives.get('default-src'), ["'none'"], `listing CSP: default-src 'none' (so no script-src at all): ${csp}`);
  t.notOk(directives.has('script-src'), 'listing CSP allows no script');
  t.same(directives.get('img-src'), ["'self'"], 'listing may load images from its own origin');
  t.same(directives.get('media-src'), ["'self'"], 'and video/audio');
  t.same(directives.get('frame-ancestors'), ["'none'"], 'and cannot be framed');
  t.equal(list.headers['x-content-type-options'], 'nosniff', 'listing: nosniff');
  t.notMatch(list.text, /<script|javascript:|<[^>]*\son\w+=/i, 'listing body has no script, no handler attributes');
  t.match(list.text, /<img [^>]*src="\/loc\/pic\.png"/, 'the listing previews the image');
  t.match(list.text, /<video [^>]*src="\/loc\/clip\.mp4"/, 'and the video');
  t.match(list.text, /&lt;img src=x onerror=alert\(1\)&gt;\.png/, 'a hostile file name is shown escaped');
});
