import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { HttpPool, type GetAnswer } from '../core/http-get';
import { bufferedBody, type LentSink } from '../core/lent-stream';

// The content GETs' own HTTP/1.1 client (core/http-get.ts, core/http1-conn.ts), against a real
// node:http server and against raw sockets that answer what a broken or hostile server would.

const TIMEOUTS = { connectMs: 2000, idleMs: 1500 };

async function listen<S extends Server | HttpServer>(s: S): Promise<S & { port: number }> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return Object.assign(s, { port: (s.address() as AddressInfo).port });
}

/** The body read as a plain Readable. */
async function pushed(a: GetAnswer): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of a) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** The body written into lent buffers of 40,000 bytes (not a multiple of any read size). */
function lent(a: GetAnswer, size: number): Promise<Buffer> {
  const out = Buffer.alloc(size);
  let at = 0;
  return new Promise((resolve, reject) => {
    a.once('end', () => resolve(out.subarray(0, at)));
    a.once('error', reject);
    const sink: LentSink = { target: () => out.subarray(at, Math.min(at + 40_000, size)), filled: (n) => (at += n) };
    a.lend(sink);
  });
}

/** Bodies of several sizes, served with a content-length or chunked (`?chunked`), each written in pieces. */
const bodies = [0, 1, 5000, 16_383, 65_537, 300_000, 1_100_000].map((n) => randomBytes(n));

async function bodyServer(t: Test) {
  let requests = 0;
  const sockets = new Set<Socket>();
  const s = await listen(
    createHttpServer((req, res) => {
      requests++;
      const url = new URL(req.url ?? '/', 'http://x');
      const body = bodies[Number(url.pathname.slice(1))];
      if (url.searchParams.has('chunked')) res.writeHead(200, { 'content-type': 'application/octet-stream' });
      else res.writeHead(200, { 'content-length': String(body.length) });
      for (let i = 0; i < body.length; i += 70_001) res.write(body.subarray(i, i + 70_001));
      res.end();
    }),
  );
  s.on('connection', (c: Socket) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  return { s, sockets, requests: () => requests };
}

t.test('bodies of every size, with content-length and chunked, pushed, lent, buffered and collected, on kept-alive connections: byte-exact', async (t) => {
  const { s, sockets, requests } = await bodyServer(t);
  const pool = new HttpPool();
  t.teardown(() => pool.close());
  for (const mode of ['', '?chunked'])
    for (const how of ['pushed', 'lent', 'buffered', 'collected'])
      for (let i = 0; i < bodies.length; i++) {
        // collected: asked of the pool, into one buffer from the first byte (a chunked body is not: bufferedBody collects it)
        const a = await pool.get({ protocol: 'http:', hostname: '127.0.0.1', port: s.port, path: `/${i}${mode}` }, {}, TIMEOUTS, undefined, how === 'collected' ? 2 ** 20 : 0);
        if (how === 'collected')
          t.equal(a.collected !== undefined, mode === '' && bodies[i].length > 0 && bodies[i].length <= 2 ** 20, `${bodies[i].length} bytes${mode}: collected as asked`);
        t.equal(a.status, 200);
        // buffered: one buffer of the content-length lent (a chunked body has none: collected)
        const length = a.headers['content-length'] === undefined ? undefined : Number(a.headers['content-length']);
        const got = how === 'pushed' ? await pushed(a) : how === 'lent' ? await lent(a, bodies[i].length + 10) : await bufferedBody(a, length);
        t.ok(got.equals(bodies[i]), `${bodies[i].length} bytes${mode}, ${how}: exact`);
      }
  // Eight at once, each reading slowly: every answer comes back whole on the connections the pool keeps.
  const answers = await Promise.all(
    Array.from({ length: 8 }, async (_, k) => {
      const a = await pool.get({ protocol: 'http:', hostname: '127.0.0.1', port: s.port, path: `/${5 + (k % 2)}` }, {}, TIMEOUTS);
      const parts: Buffer[] = [];
      for await (const c of a) {
        parts.push(c as Buffer);
        await new Promise((r) => setTimeout(r, 1));
      }
      return Buffer.concat(parts).equals(bodies[5 + (k % 2)]);
    }),
  );
  t.same(answers, Array(8).fill(true), 'eight concurrent slow readers: exact');
  // An answer written in one piece: on a kept-alive connection its first read (64 KiB) holds the head and much of the body.
  const whole = await listen(
    createNetServer((c) => {
      c.on('error', () => undefined);
      c.on('data', () => c.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${bodies[5].length}\r\n\r\n`), bodies[5]])));
    }),
  );
  t.teardown(() => whole.close());
  for (let k = 0; k < 4; k++) {
    const a = await pool.get({ protocol: 'http:', hostname: '127.0.0.1', port: whole.port, path: '/' }, {}, TIMEOUTS);
    t.ok((k % 2 ? await lent(a, bodies[5].length) : await pushed(a)).equals(bodies[5]), `answer ${k} in one write, on one connection: exact`);
  }
  t.equal(requests(), 2 * 4 * bodies.length + 8);
  t.ok(sockets.size <= 8, `connections reused (${sockets.size} open for ${requests()} requests)`);
});

t.test('a kept-alive connection the server closed is replaced; refused, silent and cut connections fail as node:http would', async (t) => {
  const { s, sockets } = await bodyServer(t);
  const pool = new HttpPool();
  t.teardown(() => pool.close());
  const target = { protocol: 'http:' as const, hostname: '127.0.0.1', port: s.port, path: '/2' };
  t.ok((await pushed(await pool.get(target, {}, TIMEOUTS))).equals(bodies[2]));
  for (const c of sockets) c.destroy();
  await new Promise((r) => setTimeout(r, 50));
  t.ok((await pushed(await pool.get(target, {}, TIMEOUTS))).equals(bodies[2]), 'answered on a new connection');

  const closed = await listen(createNetServer());
  const port = closed.port;
  await new Promise<void>((r) => closed.close(() => r()));
  await t.rejects(pool.get({ ...target, port }, {}, TIMEOUTS), { code: 'ECONNREFUSED' }, 'nothing listens: ECONNREFUSED');

  // Raw servers: what they answer is written by hand.
  const raw = (answer: (c: Socket) => void) =>
    listen(
      createNetServer((c) => {
        c.on('error', () => undefined);
        c.once('data', () => answer(c));
      }),
    );
  const silent = await raw(() => undefined);
  t.teardown(() => silent.close());
  await t.rejects(pool.get({ ...target, port: silent.port }, {}, TIMEOUTS), { name: 'TimeoutError' }, 'no answer: TimeoutError');

  const cut = await raw((c) => {
    c.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n');
    c.end(Buffer.alloc(1000));
  });
  t.teardown(() => cut.close());
  await t.rejects(pushed(await pool.get({ ...target, port: cut.port }, {}, TIMEOUTS)), { code: 'ECONNRESET' }, 'a body cut before its content-length: ECONNRESET');
  await t.rejects(
    bufferedBody(await pool.get({ ...target, port: cut.port }, {}, TIMEOUTS), 100_000),
    { code: 'ECONNRESET' },
    'the same body read into one lent buffer: ECONNRESET',
  );
  await t.rejects(
    bufferedBody(await pool.get({ ...target, port: cut.port }, {}, TIMEOUTS, undefined, 100_000)),
    { code: 'ECONNRESET' },
    'and collected from its first byte: ECONNRESET',
  );

  const untilClose = await raw((c) => c.end('HTTP/1.0 200 OK\r\n\r\nall of it'));
  t.teardown(() => untilClose.close());
  t.equal((await pushed(await pool.get({ ...target, port: untilClose.port }, {}, TIMEOUTS))).toString(), 'all of it', 'a body without a length ends with its connection');

  const stalled = await raw((c) => c.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nabc'));
  t.teardown(() => stalled.close());
  await t.rejects(pushed(await pool.get({ ...target, port: stalled.port }, {}, TIMEOUTS)), { name: 'TimeoutError' }, 'a body that stalls: TimeoutError');

  const ac = new AbortController();
  const aborted = pool.get({ ...target, port: silent.port }, {}, TIMEOUTS, ac.signal);
  setTimeout(() => ac.abort(), 50);
  await t.rejects(aborted, { name: 'AbortError' }, 'aborted while waiting: AbortError');
});

t.test('hostile answers are refused with EIO and their connection dropped; a request cannot be smuggled', async (t) => {
  const pool = new HttpPool();
  t.teardown(() => pool.close());
  const answers: Record<string, string | Buffer> = {
    'not HTTP': 'SSH-2.0-OpenSSH\r\n\r\n',
    'endless headers': `HTTP/1.1 200 OK\r\n${'x-a: b\r\n'.repeat(5000)}`,
    'negative length': 'HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n',
    'huge length': 'HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n',
    'gzip framing': 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n',
  };
  for (const [what, text] of Object.entries(answers)) {
    const s = await listen(createNetServer((c) => c.once('data', () => c.end(text)).on('error', () => undefined)));
    await t.rejects(pool.get({ protocol: 'http:', hostname: '127.0.0.1', port: s.port, path: '/' }, {}, TIMEOUTS), { code: 'EIO' }, what);
    s.close();
  }
  const body = {
    'a chunk size that is not hex': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
    'a chunk without its CRLF': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n',
    'an endless chunk-size line': `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${'0'.repeat(10_000)}`,
    'more than its content-length': 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcdef',
  };
  for (const [what, text] of Object.entries(body)) {
    const s = await listen(createNetServer((c) => c.once('data', () => c.write(text)).on('error', () => undefined)));
    const a = await pool.get({ protocol: 'http:', hostname: '127.0.0.1', port: s.port, path: '/' }, {}, TIMEOUTS);
    await t.rejects(pushed(a), { code: 'EIO' }, what);
    s.close();
  }
  for (const [path, headers] of [
    ['/a\r\nx-evil: 1', {}],
    ['/a', { range: 'bytes=0-1\r\n\r\nGET /other HTTP/1.1' }],
  ] as const)
    await t.rejects(pool.get({ protocol: 'http:', hostname: '127.0.0.1', port: 1, path }, headers, TIMEOUTS), { code: 'EINVAL' }, `line break in ${JSON.stringify(path)}`);
});
