// The bench's world: generated data, the vdfs daemon and every baseline server, all torn down on exit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vdfs } from '../helpers/cli';
import { startMount, type RunningMount } from '../helpers/mount';
import { isMounted } from '../helpers/mount';
import { urlWithLogin, webdavLogin } from '../helpers/webdav';
import { have, MiB, sh, shOk, sleep, type BenchOptions } from './lib';

export interface Sizes { bigMiB: number; treeDirs: number; treeFilesPerDir: number; treeFileBytes: number; dirEntries: number; writeMiB: number }

export const QUICK: Sizes = { bigMiB: 512, treeDirs: 20, treeFilesPerDir: 1000, treeFileBytes: 4096, dirEntries: 10_000, writeMiB: 512 };
export const FULL: Sizes = { bigMiB: 2048, treeDirs: 100, treeFilesPerDir: 1000, treeFileBytes: 4096, dirEntries: 10_000, writeMiB: 1024 };

export interface Server { name: string; pid?: number; mnt?: string; url?: string; stop(): Promise<void> }

export class Env {
  readonly root: string;
  readonly data: string;
  readonly home: string;
  readonly sizes: Sizes;
  bigHash = '';
  vdfs?: { mount: RunningMount; url: string; mnt: string; pid: number };
  rcOff?: Server;
  rcFull?: Server;
  rcDav?: Server;
  apache?: Server;
  readonly notes: Record<string, string> = {};
  private cleanups: Array<() => Promise<void> | void> = [];

  constructor(private readonly o: BenchOptions) {
    this.sizes = o.quick ? QUICK : FULL;
    this.root = mkdtempSync(join(process.env.VDFS_BENCH_DIR ?? tmpdir(), 'vdfs-bench-'));
    chmodSync(this.root, 0o755); // Apache's worker (www-data) must reach the data
    this.data = join(this.root, 'data');
    this.home = join(this.root, 'home');
    this.onCleanup(() => rmSync(this.root, { recursive: true, force: true }));
  }

  onCleanup(fn: () => Promise<void> | void): void { this.cleanups.unshift(fn); }

  async cleanup(): Promise<void> {
    for (const fn of this.cleanups) {
      try { await fn(); } catch (err) { process.stderr.write(`bench cleanup: ${(err as Error).message}\n`); }
    }
    this.cleanups = [];
  }

  /** The relative paths below are the same through every front end: <location>/<rel>. */
  get bigRel(): string { return 'big/big.bin'; }
  get bigBytes(): number { return this.sizes.bigMiB * MiB; }
  get treeFiles(): number { return this.sizes.treeDirs * this.sizes.treeFilesPerDir; }

  generate(): void {
    const s = this.sizes;
    for (const d of ['big', 'tree', 'dir10k', 'w', 'wb']) mkdirSync(join(this.data, d), { recursive: true });
    chmodSync(join(this.data, 'wb'), 0o777);
    // Incompressible content, written in 8 MiB chunks of fresh random bytes.
    const fd = openSync(join(this.data, this.bigRel), 'w');
    for (let i = 0; i < s.bigMiB; i += 8) writeSync(fd, randomBytes(Math.min(8, s.bigMiB - i) * MiB));
    closeSync(fd);
    const seed = randomBytes(s.treeFileBytes + 4096);
    for (let d = 0; d < s.treeDirs; d++) {
      const dir = join(this.data, 'tree', `d${String(d).padStart(3, '0')}`);
      mkdirSync(dir);
      for (let f = 0; f < s.treeFilesPerDir; f++) {
        const k = (d * 7919 + f * 104729) % 4096;
        const buf = Buffer.from(seed.subarray(k, k + s.treeFileBytes));
        buf.writeUInt32LE(d * 100_000 + f, 0); // distinct content per file
        writeFileSync(join(dir, `f${String(f).padStart(5, '0')}.dat`), buf);
      }
    }
    for (let i = 0; i < s.dirEntries; i++) writeFileSync(join(this.data, 'dir10k', `entry-${String(i).padStart(5, '0')}.txt`), `entry ${i}\n`);
  }

  /** A vdfs home with one local location per data folder, scanned (hashes the data). */
  setupHome(): void {
    const ok = (args: string[]) => {
      const r = vdfs(this.home, args, { timeoutMs: 900_000 });
      if (r.code !== 0) throw new Error(`vdfs ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    ok(['init', '--name', 'bench']);
    for (const d of ['big', 'tree', 'dir10k', 'w']) ok(['location', 'add', d, join(this.data, d)]);
    ok(['scan', '--json']);
    const st = vdfs(this.home, ['stat', '--json', `/${this.bigRel}`]);
    this.bigHash = st.code === 0 ? (st.json<{ hash: string }>().hash ?? '') : '';
    if (!this.bigHash) this.bigHash = sh(`b3sum --no-names ${join(this.data, this.bigRel)}`).stdout.trim();
  }

  async startVdfs(port: number): Promise<void> {
    const mnt = join(this.root, 'mnt-vdfs');
    mkdirSync(mnt);
    const mount = await startMount(this.home, mnt, ['--webdav', `127.0.0.1:${port}`], 60_000);
    this.onCleanup(async () => { await mount.stop(); });
    const m = /vdfs serving WebDAV at (\S+)/.exec(mount.output());
    // curl sends the login in the URL as Basic (the daemon caches accepted credentials)
    const url = urlWithLogin((m ? m[1] : `http://127.0.0.1:${port}/`).replace(/\/?$/, '/'), webdavLogin(this.home));
    this.vdfs = { mount, url, mnt, pid: mount.proc.pid! };
  }

  /** Stops and restarts the vdfs daemon (its block cache stays on disk). */
  async restartVdfs(port: number): Promise<void> {
    if (this.vdfs) await this.vdfs.mount.stop();
    const mnt = join(this.root, 'mnt-vdfs');
    const mount = await startMount(this.home, mnt, ['--webdav', `127.0.0.1:${port}`], 60_000);
    this.onCleanup(async () => { await mount.stop(); });
    this.vdfs = { mount, url: this.vdfs!.url, mnt, pid: mount.proc.pid! };
  }

  clearVdfsCache(): void {
    // "cache clear" refuses while a daemon runs; the bench removes the cached blocks itself
    // only through the CLI when the daemon is stopped (see cache.ts).
    const r = vdfs(this.home, ['cache', 'clear']);
    if (r.code !== 0) throw new Error(`vdfs cache clear: ${r.stderr.trim()}`);
  }

  async startRcloneMount(mode: 'off' | 'full'): Promise<Server | undefined> {
    if (!have('rclone')) { this.notes.rclone = 'rclone not installed'; return undefined; }
    const mnt = join(this.root, `mnt-rclone-${mode}`);
    mkdirSync(mnt, { recursive: true });
    const cacheDir = join(this.root, `rclone-cache-${mode}`);
    const start = async (): Promise<{ proc: ChildProcess }> => {
      rmSync(cacheDir, { recursive: true, force: true });
      const proc = spawn('rclone', ['mount', this.data, mnt, '--config', join(this.root, 'rclone.conf'), '--vfs-cache-mode', mode, '--cache-dir', cacheDir, '--vfs-cache-max-size', '20G'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      await waitFor(() => isMounted(mnt), 20_000, () => proc.exitCode !== null, () => `rclone mount (${mode}) did not come up: ${err}`);
      return { proc };
    };
    let cur = await start();
    const server: Server & { restart(): Promise<void> } = {
      name: `rclone-${mode}`,
      mnt,
      get pid() { return cur.proc.pid; },
      async stop() { await stopProc(cur.proc); if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt], { timeout: 10_000 }); },
      async restart() { await server.stop(); cur = await start(); },
    };
    this.onCleanup(() => server.stop());
    return server;
  }

  async startRcloneDav(port: number): Promise<Server | undefined> {
    if (!have('rclone')) return undefined;
    const proc = spawn('rclone', ['serve', 'webdav', this.data, '--addr', `127.0.0.1:${port}`, '--config', join(this.root, 'rclone.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const url = `http://127.0.0.1:${port}/`;
    const server: Server = { name: 'rclone', pid: proc.pid, url, stop: () => stopProc(proc) };
    this.onCleanup(() => server.stop());
    await waitFor(() => sh(`curl -s -o /dev/null -w '%{http_code}' ${url}`).stdout === '200', 20_000, () => proc.exitCode !== null, () => `rclone serve webdav did not come up: ${err}`);
    return server;
  }

  /** Apache mod_dav on loopback with a temporary config; installs Debian's apache2 when allowed. */
  async startApache(port: number, install: boolean): Promise<Server | undefined> {
    const bin = '/usr/sbin/apache2';
    if (!have(bin) && install && process.getuid?.() === 0 && have('apt-get')) {
      this.o.log('installing Debian apache2 for the mod_dav baseline (--no-install to skip)');
      sh('DEBIAN_FRONTEND=noninteractive apt-get install -y apache2', { timeoutMs: 300_000 });
    }
    if (!have(bin)) { this.notes.apache = 'baseline not installed (Debian apache2)'; return undefined; }
    const mods = '/usr/lib/apache2/modules';
    const dir = join(this.root, 'apache');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const conf = join(dir, 'httpd.conf');
    writeFileSync(conf, [
      `ServerRoot ${dir}`,
      `ServerName 127.0.0.1`,
      `Listen 127.0.0.1:${port}`,
      `PidFile ${dir}/httpd.pid`,
      `ErrorLog ${dir}/error.log`,
      `LoadModule mpm_event_module ${mods}/mod_mpm_event.so`,
      `LoadModule authz_core_module ${mods}/mod_authz_core.so`,
      `LoadModule dav_module ${mods}/mod_dav.so`,
      `LoadModule dav_fs_module ${mods}/mod_dav_fs.so`,
      `User www-data`,
      `Group www-data`,
      `DAVLockDB ${dir}/davlock`,
      `DocumentRoot ${this.data}`,
      `EnableSendfile On`,
      `<Directory />`,
      `  Dav On`,
      `  Require all granted`,
      `</Directory>`,
      `LimitRequestBody 0`,
      '',
    ].join('\n'));
    const proc = spawn(bin, ['-f', conf, '-DFOREGROUND'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, APACHE_RUN_DIR: dir } });
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const url = `http://127.0.0.1:${port}/`;
    const server: Server = { name: 'apache', pid: proc.pid, url, stop: () => stopProc(proc) };
    this.onCleanup(() => server.stop());
    await waitFor(() => sh(`curl -s -o /dev/null -w '%{http_code}' ${url}big/`).stdout !== '000', 20_000, () => proc.exitCode !== null, () => `apache did not come up: ${err} ${sh(`cat ${dir}/error.log`).stdout}`);
    return server;
  }
}


async function waitFor(ok: () => boolean, ms: number, dead: () => boolean, msg: () => string): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (dead() || Date.now() - t0 > ms) throw new Error(msg());
    await sleep(100);
  }
}

async function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await Promise.race([exited, sleep(15_000)]);
  clearTimeout(t);
}
