import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import Database from 'better-sqlite3';
import { VDFS_BIN, vdfs, vdfsOk } from './cli';

export interface PeerDaemon {
  proc: ChildProcess;
  home: string;
  /** https://127.0.0.1:PORT */
  url: string;
  output(): string;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

function waitExit(proc: ChildProcess, ms: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(res, ms);
    proc.once('exit', () => {
      clearTimeout(timer);
      res();
    });
  });
}

/**
 * Starts the real daemon `vdfs serve --peer 127.0.0.1:PORT` (port 0 = any) in a child process and
 * waits (hard timeout) for its "vdfs serving peers at URL" line. Register stop() in teardown.
 */
export async function startPeerDaemon(home: string, opts: { port?: number; extra?: string[]; logLevel?: string; timeoutMs?: number } = {}): Promise<PeerDaemon> {
  const proc = spawn(
    process.execPath,
    [VDFS_BIN, '--home', home, '--log-level', opts.logLevel ?? 'info', 'serve', '--peer', `127.0.0.1:${opts.port ?? 0}`, ...(opts.extra ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const d: PeerDaemon = {
    proc,
    home,
    url: '',
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await waitExit(proc, 10_000);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await waitExit(proc, 5000);
      }
    },
    async kill9() {
      proc.kill('SIGKILL');
      await waitExit(proc, 5000);
    },
  };
  const started = Date.now();
  for (;;) {
    const m = /vdfs serving peers at (https:\/\/\S+)/.exec(out);
    if (m) {
      d.url = m[1];
      return d;
    }
    if (proc.exitCode !== null || Date.now() - started > (opts.timeoutMs ?? 20_000)) {
      await d.stop();
      throw new Error(`vdfs serve --peer did not come up (exit ${proc.exitCode}):\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A home named `name` with one scanned location `docs` holding `files` (path → content). */
export function makeNode(dir: string, name: string, files: Record<string, Buffer | string> = {}, location = 'docs'): { home: string; src: string } {
  const home = join(dir, name);
  const src = join(dir, `${name}-${location}`);
  mkdirSync(src, { recursive: true });
  for (const [p, data] of Object.entries(files)) {
    mkdirSync(join(src, p, '..'), { recursive: true });
    writeFileSync(join(src, p), data);
  }
  vdfsOk(home, ['init', '--name', name]);
  vdfsOk(home, ['location', 'add', location, src]);
  vdfsOk(home, ['scan']);
  return { home, src };
}

/** `vdfs peer invite` on the inviter (whose daemon runs), the printed line on the joiner. Returns the line. */
export function pair(inviter: string, joiner: string, shares: string[] = ['docs'], extra: string[] = []): string {
  const line = vdfsOk(inviter, ['peer', 'invite', ...shares.flatMap((s) => ['--share', s]), ...extra]).stdout.trim();
  const m = /^vdfs peer pair (\S+) (\S+)$/.exec(line);
  if (!m) throw new Error(`unexpected invitation line: ${line}`);
  vdfsOk(joiner, ['peer', 'pair', m[1], m[2]]);
  return line;
}

export interface TlsProbe {
  /** The handshake finished on our side. */
  secure: boolean;
  /** Bytes the server sent after the handshake (an HTTP answer, if it got that far). */
  received: string;
  error?: string;
}

/**
 * Connects with the given client certificate (or none), sends one HTTP request and reports what
 * came back before the connection ended (hard 5 s timeout).
 */
export function tlsProbe(url: string, o: { key?: string; cert?: string; alpn?: string; request?: string } = {}): Promise<TlsProbe> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const r: TlsProbe = { secure: false, received: '' };
    const sock = tls.connect({ host: u.hostname, port: Number(u.port), key: o.key, cert: o.cert, rejectUnauthorized: false, ALPNProtocols: [o.alpn ?? 'http/1.1'] });
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    // 15 s: on a loaded CI machine a handshake took over 5 s, and the probe's hang-up then read
    // as a refusal ("TLS handshake failed" in the server's log instead of the check it tests).
    const timer = setTimeout(() => {
      r.error = 'timeout';
      done();
    }, 15_000);
    sock.on('secureConnect', () => {
      r.secure = true;
      sock.write(o.request ?? `GET /v1/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    sock.on('data', (d: Buffer) => (r.received += d.toString('latin1')));
    sock.on('error', (e) => {
      r.error = e.message;
    });
    sock.on('close', done);
  });
}

/** Polls `fn` until it returns true (hard timeout); returns the elapsed milliseconds, or -1. */
export async function waitFor(fn: () => boolean, timeoutMs = 10_000, stepMs = 100): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (fn()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return -1;
}

export { vdfs, vdfsOk };

/** The content hash fillSynthetic gives its n-th file. */
export const syntheticHash = (n: number): string => createHash('sha256').update(String(n)).digest('hex');

/**
 * Fills the `docs` location of node `a` with `folders` × `perFolder` files (random-looking hashes), directly in SQLite.
 * The tree is in the index only: its folder goes away so no rescan removes it (the location
 * is offline; its index is still shared). Returns the location's entry count.
 */
export function fillSynthetic(a: { home: string; src: string }, folders: number, perFolder: number): number {
  rmSync(a.src, { recursive: true });
  const db = new Database(join(a.home, 'index.db'));
  const loc = db.prepare("SELECT id FROM locations WHERE name = 'docs'").pluck().get() as number;
  const root = db.prepare('SELECT id FROM entries WHERE location_id = ? AND parent_id IS NULL').pluck().get(loc) as number;
  db.transaction(() => {
    const dirIns = db.prepare("INSERT INTO entries (location_id, parent_id, name, type, mode, version) VALUES (?, ?, ?, 'dir', 493, ?)");
    const fileIns = db.prepare("INSERT INTO entries (location_id, parent_id, name, type, size, mode, version, hash) VALUES (?, ?, ?, 'file', ?, 420, ?, unhex(?))");
    let n = 0;
    for (let d = 0; d < folders; d++) {
      const id = Number(dirIns.run(loc, root, `d${d}`, `${n}:0:0`).lastInsertRowid);
      for (let f = 0; f < perFolder; f++, n++) fileIns.run(loc, id, `IMG_${f}.jpg`, f, `${n}:${f}:0`, syntheticHash(n));
    }
  })();
  const total = db.prepare('SELECT count(*) FROM entries WHERE location_id = ?').pluck().get(loc) as number;
  db.close();
  return total;
}
