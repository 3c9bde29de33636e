// The bench's world: generated data, the vdfs daemon and every baseline server, all torn down on exit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vdfs } from '../helpers/cli';
import { startMount, type RunningMount } from '../helpers/mount';
import { isMounted } from '../helpers/mount';
import { webdavLogin } from '../helpers/webdav';
import { have, MiB, sh, shOk, sleep, type BenchOptions, type SizeName } from './lib';

/** The data of one run. `parallelMiB` is per reader (4 readers); `photoKiB` per photo. */
export interface Sizes {
  bigMiB: number;
  treeDirs: number;
  treeFilesPerDir: number;
  treeFileBytes: number;
  dirEntries: number;
  writeMiB: number;
  untarFiles: number;
  /** fuse.rsync: files of the source tree `rsync -a` copies in. */
  rsyncFiles: number;
  gitFiles: number;
  photos: number;
  photoKiB: number;
  parallelMiB: number;
  randSecs: number;
  s3SeqMiB: number;
  s3TtfbMiB: number;
  s3SmallFiles: number;
  /** daemon.rss.s3: MiB streamed from S3 through FUSE and through WebDAV at once. */
  s3RssMiB: { fuse: number; dav: number };
  peerMiB: number;
  peerEntries: number;
}

/** For the harness test: every figure, in seconds rather than minutes; the values mean nothing. */
export const TINY: Sizes = {
  bigMiB: 16,
  treeDirs: 2,
  treeFilesPerDir: 100,
  treeFileBytes: 4096,
  dirEntries: 200,
  writeMiB: 16,
  untarFiles: 300,
  rsyncFiles: 100,
  gitFiles: 300,
  photos: 30,
  photoKiB: 128,
  parallelMiB: 8,
  randSecs: 1,
  s3SeqMiB: 8,
  s3TtfbMiB: 16,
  s3SmallFiles: 40,
  s3RssMiB: { fuse: 16, dav: 8 },
  peerMiB: 8,
  peerEntries: 500,
};
export const QUICK: Sizes = {
  bigMiB: 512,
  treeDirs: 20,
  treeFilesPerDir: 1000,
  treeFileBytes: 4096,
  dirEntries: 10_000,
  writeMiB: 512,
  untarFiles: 20_000,
  rsyncFiles: 2_000,
  gitFiles: 10_000,
  photos: 1000,
  photoKiB: 256,
  parallelMiB: 128,
  randSecs: 5,
  s3SeqMiB: 64,
  s3TtfbMiB: 256,
  s3SmallFiles: 1000,
  s3RssMiB: { fuse: 640, dav: 256 },
  peerMiB: 128,
  peerEntries: 20_000,
};
export const FULL: Sizes = {
  bigMiB: 2048,
  treeDirs: 100,
  treeFilesPerDir: 1000,
  treeFileBytes: 4096,
  dirEntries: 10_000,
  writeMiB: 1024,
  untarFiles: 20_000,
  rsyncFiles: 2_000,
  gitFiles: 10_000,
  photos: 1000,
  photoKiB: 1024,
  parallelMiB: 512,
  randSecs: 15,
  s3SeqMiB: 256,
  s3TtfbMiB: 1024,
  s3SmallFiles: 1000,
  s3RssMiB: { fuse: 10240, dav: 4096 },
  peerMiB: 256,
  peerEntries: 100_000,
};
export const SIZES: Record<SizeName, Sizes> = { tiny: TINY, quick: QUICK, full: FULL };

/**
 * The FUSE cache timeouts every mount gets, so that no figure is a cache setting: vdfs mounts
 * with attr_timeout = entry_timeout = 10 s (mount/fuse/fuse-mount.ts) and keeps directory
 * listings until its watcher sees a change; rclone gets the same attribute timeout and a
 * directory cache that outlives the run.
 */
export const RCLONE_CACHE_FLAGS = ['--attr-timeout', '10s', '--dir-cache-time', '1h'];

export interface Server {
  name: string;
  pid?: number;
  mnt?: string;
  url?: string;
  stop(): Promise<void>;
}

export class Env {
  readonly root: string;
  readonly data: string;
  readonly home: string;
  readonly sizes: Sizes;
  bigHash = '';
  vdfs?: { mount: RunningMount; url: string; mnt: string; pid: number; auth: { user: string; pass: string } };
  rcOff?: Server;
  rcFull?: Server;
  rcDav?: Server;
  apache?: Server;
  readonly notes: Record<string, string> = {};
  /** Baselines left out on purpose (--skip rclone,apache). */
  readonly skip: Set<string>;
  private cleanups: Array<() => Promise<void> | void> = [];

  constructor(
    private readonly o: BenchOptions,
    skip: string[] = [],
  ) {
    this.sizes = SIZES[o.size];
    this.skip = new Set(skip);
    this.root = mkdtempSync(join(process.env.VDFS_BENCH_DIR ?? tmpdir(), 'vdfs-bench-'));
    chmodSync(this.root, 0o755); // Apache's worker (www-data) must reach the data
    this.data = join(this.root, 'data');
    this.home = join(this.root, 'home');
    this.onCleanup(() => rmSync(this.root, { recursive: true, force: true }));
  }

  onCleanup(fn: () => Promise<void> | void): void {
    this.cleanups.unshift(fn);
  }

  async cleanup(): Promise<void> {
    for (const fn of this.cleanups) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`bench cleanup: ${(err as Error).message}\n`);
      }
    }
    this.cleanups = [];
  }

  /** The relative paths below are the same through every front end: <location>/<rel>. */
  get bigRel(): string {
    return 'big/big.bin';
  }
  get bigBytes(): number {
    return this.sizes.bigMiB * MiB;
  }
  get treeFiles(): number {
    return this.sizes.treeDirs * this.sizes.treeFilesPerDir;
  }
  /** The tarball fuse.untar unpacks (outside every served folder). */
  get tarball(): string {
    return join(this.root, 'untar.tar');
  }
  /** The source tree fuse.rsync copies in (outside every served folder). */
  get rsyncSrc(): string {
    return join(this.root, 'rsync-src');
  }
  /** The vdfs locations (one per served folder; `wb` is where baselines write, not a location). */
  static readonly LOCATIONS = ['big', 'tree', 'dir10k', 'w', 'par', 'photos', 'repo'];

  generate(): void {
    const s = this.sizes;
    for (const d of [...Env.LOCATIONS, 'wb']) mkdirSync(join(this.data, d), { recursive: true });
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
    for (let i = 0; i < 4; i++) randomFile(join(this.data, 'par', `p${i}.bin`), s.parallelMiB * MiB);
    for (let i = 0; i < s.photos; i++) randomFile(join(this.data, 'photos', `IMG_${String(i).padStart(4, '0')}.jpg`), s.photoKiB * 1024);
    const src = join(this.root, 'untar-src');
    sourceTree(src, s.untarFiles);
    shOk(`tar cf ${this.tarball} -C ${src} .`);
    rmSync(src, { recursive: true, force: true });
    sourceTree(this.rsyncSrc, s.rsyncFiles);
    this.makeRepo(join(this.data, 'repo'), s.gitFiles);
  }

  /**
   * A committed git repository of `files` source files. Stat checks are minimal and the
   * files are dated in the past, so that one index is clean through every mount (inode
   * numbers differ per mount) and `git status` never has to re-hash racily clean files.
   */
  private makeRepo(dir: string, files: number): void {
    sourceTree(dir, files);
    const cfg =
      'git -c init.defaultBranch=main init -q && git config user.email bench@vdfs && git config user.name bench && git config core.checkStat minimal && git config core.trustctime false && git config gc.auto 0 && git config core.untrackedCache false';
    shOk(`${cfg} && find . -path ./.git -prune -o -exec touch -h -d 2020-01-01T00:00:00 {} + && git add -A && git commit -qm tree && git status --porcelain`, {
      cwd: dir,
      timeoutMs: 600_000,
    });
  }

  /** A vdfs home with one local location per data folder, scanned (hashes the data). */
  setupHome(): void {
    const ok = (args: string[]) => {
      const r = vdfs(this.home, args, { timeoutMs: 900_000 });
      if (r.code !== 0) throw new Error(`vdfs ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    ok(['init', '--name', 'bench']);
    for (const d of Env.LOCATIONS) ok(['location', 'add', d, join(this.data, d)]);
    ok(['scan', '--json']);
    const st = vdfs(this.home, ['stat', '--json', `/${this.bigRel}`]);
    this.bigHash = st.code === 0 ? (st.json<{ hash: string }>().hash ?? '') : '';
    if (!this.bigHash) this.bigHash = sh(`b3sum --no-names ${join(this.data, this.bigRel)}`).stdout.trim();
  }

  async startVdfs(port: number): Promise<void> {
    const mnt = join(this.root, 'mnt-vdfs');
    mkdirSync(mnt);
    const mount = await startMount(this.home, mnt, ['--webdav', `127.0.0.1:${port}`], 60_000);
    this.onCleanup(async () => {
      await mount.stop();
    });
    const m = /vdfs serving WebDAV at (\S+)/.exec(mount.output());
    const url = (m ? m[1] : `http://127.0.0.1:${port}/`).replace(/\/?$/, '/');
    this.vdfs = { mount, url, mnt, pid: mount.proc.pid!, auth: this.webdavAuth() };
  }

  /** The home's WebDAV login (the share asks for it on loopback too). */
  webdavAuth(): { user: string; pass: string } {
    const l = webdavLogin(this.home);
    return { user: l.user, pass: l.password };
  }

  clearVdfsCache(): void {
    // "cache clear" refuses while a daemon runs; the bench removes the cached blocks itself
    // only through the CLI when the daemon is stopped (see cache.ts).
    const r = vdfs(this.home, ['cache', 'clear']);
    if (r.code !== 0) throw new Error(`vdfs cache clear: ${r.stderr.trim()}`);
  }

  async startRcloneMount(mode: 'off' | 'full'): Promise<Server | undefined> {
    if (this.skip.has('rclone')) return undefined;
    const mnt = join(this.root, `mnt-rclone-${mode}`);
    mkdirSync(mnt, { recursive: true });
    const cacheDir = join(this.root, `rclone-cache-${mode}`);
    const start = async (): Promise<{ proc: ChildProcess }> => {
      rmSync(cacheDir, { recursive: true, force: true });
      const proc = spawn(
        'rclone',
        [
          'mount',
          this.data,
          mnt,
          '--config',
          join(this.root, 'rclone.conf'),
          '--vfs-cache-mode',
          mode,
          '--cache-dir',
          cacheDir,
          '--vfs-cache-max-size',
          '20G',
          ...RCLONE_CACHE_FLAGS,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let err = '';
      proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      await waitFor(
        () => isMounted(mnt),
        20_000,
        () => proc.exitCode !== null,
        () => `rclone mount (${mode}) did not come up: ${err}`,
      );
      return { proc };
    };
    let cur = await start();
    const server: Server & { restart(): Promise<void> } = {
      name: `rclone-${mode}`,
      mnt,
      get pid() {
        return cur.proc.pid;
      },
      async stop() {
        await stopProc(cur.proc);
        if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt], { timeout: 10_000 });
      },
      async restart() {
        await server.stop();
        cur = await start();
      },
    };
    this.onCleanup(() => server.stop());
    return server;
  }

  async startRcloneDav(port: number): Promise<Server | undefined> {
    if (this.skip.has('rclone')) return undefined;
    const proc = spawn('rclone', ['serve', 'webdav', this.data, '--addr', `127.0.0.1:${port}`, '--config', join(this.root, 'rclone.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const url = `http://127.0.0.1:${port}/`;
    const server: Server = { name: 'rclone', pid: proc.pid, url, stop: () => stopProc(proc) };
    this.onCleanup(() => server.stop());
    await waitFor(
      () => sh(`curl -s -o /dev/null -w '%{http_code}' ${url}`).stdout === '200',
      20_000,
      () => proc.exitCode !== null,
      () => `rclone serve webdav did not come up: ${err}`,
    );
    return server;
  }

  /** Apache mod_dav on loopback with a temporary config; installs Debian's apache2-bin when allowed. */
  async startApache(port: number, install: boolean): Promise<Server | undefined> {
    if (this.skip.has('apache')) return undefined;
    const bin = '/usr/sbin/apache2';
    if (!have(bin) && install && process.getuid?.() === 0 && have('apt-get')) {
      this.o.log('installing Debian apache2-bin for the mod_dav baseline (--no-install not to)');
      sh('DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends apache2-bin', { timeoutMs: 300_000 });
    }
    if (!have(bin))
      throw new Error(
        'missing tool: /usr/sbin/apache2 (Debian package apache2-bin) for the Apache mod_dav baseline; install it (bash .ci/setup does) or leave it out with --skip apache',
      );
    const mods = '/usr/lib/apache2/modules';
    const dir = join(this.root, 'apache');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const conf = join(dir, 'httpd.conf');
    writeFileSync(
      conf,
      [
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
      ].join('\n'),
    );
    const proc = spawn(bin, ['-f', conf, '-DFOREGROUND'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, APACHE_RUN_DIR: dir } });
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const url = `http://127.0.0.1:${port}/`;
    const server: Server = { name: 'apache', pid: proc.pid, url, stop: () => stopProc(proc) };
    this.onCleanup(() => server.stop());
    const status = () => sh(`curl -s -o /dev/null -w '%{http_code}' ${url}${this.bigRel}`).stdout;
    await waitFor(
      () => status() !== '000',
      20_000,
      () => proc.exitCode !== null,
      () => `apache did not come up: ${err} ${sh(`cat ${dir}/error.log`).stdout}`,
    );
    if (status() !== '200')
      throw new Error(
        `apache answers ${status()} for ${this.bigRel}: its worker (www-data) must be able to read ${this.data} and every folder above it (${sh(`tail -3 ${dir}/error.log`).stdout.trim()})`,
      );
    return server;
  }
}

/** A file of `bytes` fresh random bytes (incompressible), written in chunks of up to 8 MiB. */
function randomFile(file: string, bytes: number): void {
  const fd = openSync(file, 'w');
  try {
    for (let n = 0; n < bytes; n += 8 * MiB) writeSync(fd, randomBytes(Math.min(8 * MiB, bytes - n)));
  } finally {
    closeSync(fd);
  }
}

/** `files` small text files (200 B to 8 KiB, fixed by their number) in a two-level tree, 20 per folder, like a source tree. */
export function sourceTree(root: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const dir = join(root, `mod${String(Math.floor(i / 400)).padStart(3, '0')}`, `pkg${String(Math.floor(i / 20) % 20).padStart(2, '0')}`);
    if (i % 20 === 0) mkdirSync(dir, { recursive: true });
    const size = 200 + ((i * 7919) % 8000);
    const line = `// file ${i}: ${'x'.repeat(60)}\n`;
    writeFileSync(join(dir, `file${String(i).padStart(5, '0')}.c`), line.repeat(Math.ceil(size / line.length)).slice(0, size));
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
