import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { tempDir, VDFS_BIN, vdfsOk } from './cli';

/** The home's generated WebDAV login, as `vdfs webdav credentials --json` prints it. */
export interface WebdavLogin {
  user: string;
  password: string;
}

const logins = new Map<string, WebdavLogin>();
const byPort = new Map<number, WebdavLogin>();

/** The WebDAV login of a home (asked once through the CLI, as a user would). */
export function webdavLogin(home: string): WebdavLogin {
  let l = logins.get(home);
  if (!l) logins.set(home, (l = vdfsOk(home, ['webdav', 'credentials', '--json']).json<WebdavLogin>()));
  return l;
}

/**
 * Makes every helper request to `port` (dav, metric, rawRequest) carry the login of
 * `home`, so tests written against the share get credentials without asking for them.
 */
export function registerWebdavLogin(port: number, home: string): WebdavLogin {
  const l = webdavLogin(home);
  byPort.set(port, l);
  return l;
}

/** `Basic ...` for the login registered for `port`; throws when none is. */
export function authHeaderFor(port: number): string {
  const l = byPort.get(port);
  if (!l) throw new Error(`no WebDAV login registered for port ${port}: start the server through tests/helpers`);
  return basicAuth(l.user, l.password);
}

export function basicAuth(user: string, password: string): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}

/** `http://user:password@host:port/...`: the URL curl and similar clients take. */
export function urlWithLogin(url: string, l: WebdavLogin): string {
  return url.replace(/^(https?:\/\/)/, `$1${encodeURIComponent(l.user)}:${encodeURIComponent(l.password)}@`);
}

export interface RunningWebdav {
  proc: ChildProcess;
  url: string;
  port: number;
  home: string;
  /** The real directory behind location `loc`; other locations are its siblings named after them. */
  locDir: string;
  /** The home's generated login (helpers add it to their requests by themselves). */
  login: WebdavLogin;
  /** `url` with the login in it, for curl-style clients. */
  authUrl: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * A fresh home with one writable location `loc` (optionally seeded by `seed(dir)` and
 * scanned), served by the real daemon, `vdfs serve --webdav 127.0.0.1:0`, in a child
 * process on a free loopback port. stop() is registered in teardown and always kills it.
 */
export async function startWebdavServer(
  t: { teardown(fn: () => unknown): void },
  opts: {
    seed?: (dir: string) => void;
    env?: Record<string, string>;
    otherLocations?: string[];
    readonlyLocations?: string[];
    serveArgs?: string[];
    /** Runs just before the daemon starts (after the scan). */
    beforeServe?: (home: string) => void;
    /** Where the home goes (default: beside the location); e.g. inside `locDir`. */
    homeDir?: (dir: string, locDir: string) => string;
    /** Runs after init and location add, before the scan (config changes). */
    afterInit?: (home: string, locDir: string) => void;
  } = {},
): Promise<RunningWebdav> {
  const dir = tempDir(t, 'vdfs-webdav-');
  const home = opts.homeDir?.(dir, join(dir, 'loc')) ?? join(dir, 'home');
  const locDir = join(dir, 'loc');
  mkdirSync(locDir);
  opts.seed?.(locDir);
  vdfsOk(home, ['init', '--name', 'webdav-test']);
  vdfsOk(home, ['location', 'add', 'loc', locDir]);
  for (const name of opts.otherLocations ?? []) {
    mkdirSync(join(dir, name));
    vdfsOk(home, ['location', 'add', name, join(dir, name)]);
  }
  for (const name of opts.readonlyLocations ?? []) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'existing.txt'), 'read only');
    vdfsOk(home, ['location', 'add', name, join(dir, name), '--readonly']);
  }
  opts.afterInit?.(home, locDir);
  vdfsOk(home, ['scan']);
  opts.beforeServe?.(home);
  const proc = spawn(process.execPath, [VDFS_BIN, '--home', home, '--log-level', 'warn', 'serve', '--webdav', '127.0.0.1:0', ...(opts.serveArgs ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VDFS_HOME: '', ...opts.env },
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(timer);
  };
  t.teardown(stop);
  const started = Date.now();
  const ready = /vdfs serving WebDAV at (http:\/\/127\.0\.0\.1:(\d+)\/)/;
  while (!ready.test(out)) {
    if (proc.exitCode !== null || Date.now() - started > 20_000) {
      await stop();
      throw new Error(`webdav server did not start (exit ${proc.exitCode}):\n${out}\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const m = ready.exec(out)!;
  const url = m[1]!;
  const port = Number(m[2]);
  const login = registerWebdavLogin(port, home);
  return { proc, url, port, home, locDir, login, authUrl: urlWithLogin(url, login), output: () => out + err, stop };
}

export interface DavResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

/**
 * One raw HTTP request (no client library between the test and the server). It carries
 * the login registered for `port` unless `anonymous` is set or the test gives its own
 * Authorization header.
 */
export function dav(
  port: number,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number; anonymous?: boolean } = {},
): Promise<DavResponse> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
    const own = Object.keys(opts.headers ?? {}).some((k) => k.toLowerCase() === 'authorization');
    const auth: Record<string, string> = !opts.anonymous && !own && byPort.has(port) ? { Authorization: authHeaderFor(port) } : {};
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { ...auth, ...(body ? { 'Content-Length': String(body.length) } : {}), ...opts.headers },
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const b = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, text: b.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The server's /~vdfs/metrics value of a metric without labels. */
export async function metric(port: number, name: string): Promise<number> {
  const r = await dav(port, 'GET', '/~vdfs/metrics');
  const line = r.text.split('\n').find((l) => l.startsWith(name + ' '));
  if (!line) throw new Error(`metric ${name} missing:\n${r.text}`);
  return Number(line.split(' ')[1]);
}

/**
 * Sends bytes exactly as given over a raw TCP socket (no client-side URL normalisation)
 * and resolves with everything the server answered before closing or `timeoutMs`. The
 * login registered for `port` is added after the request line when the request has none.
 */
export function rawRequest(port: number, data: string | Buffer, timeoutMs = 5000, opts: { anonymous?: boolean } = {}): Promise<string> {
  data = withRawLogin(port, data, opts.anonymous);

  const { connect } = require('node:net') as typeof import('node:net');
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, timeoutMs);
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('end', done);
    s.on('error', done);
    s.write(data);
  });
}

/** Status code of a raw HTTP response ('' when none came). */
export function rawStatus(resp: string): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(resp);
  return m ? Number(m[1]) : 0;
}

/** Inserts `Authorization:` after the first CRLF of a raw request that has none. */
function withRawLogin(port: number, data: string | Buffer, anonymous?: boolean): string | Buffer {
  if (anonymous || !byPort.has(port)) return data;
  const line = `Authorization: ${authHeaderFor(port)}\r\n`;
  if (typeof data === 'string') {
    const eol = data.indexOf('\r\n');
    const end = data.indexOf('\r\n\r\n');
    if (eol < 0 || /\r\nauthorization:/i.test(data.slice(0, end < 0 ? data.length : end))) return data;
    return data.slice(0, eol + 2) + line + data.slice(eol + 2);
  }
  const eol = data.indexOf('\r\n');
  const end = data.indexOf('\r\n\r\n');
  if (eol < 0 || /\r\nauthorization:/i.test(data.subarray(0, end < 0 ? data.length : end).toString('latin1'))) return data;
  return Buffer.concat([data.subarray(0, eol + 2), Buffer.from(line, 'latin1'), data.subarray(eol + 2)]);
}
