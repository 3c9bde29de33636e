import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { join } from 'node:path';
import { FsError } from '../core/fs-error';
import { BlobStore } from '../index/blobs';
import { openDb, type Db } from '../index/db';
import { EntryStore } from '../index/entries';
import { LocationStore } from '../index/locations';
import { NodeStore } from '../index/nodes';
import { HiddenRels } from '../index/state-paths';
import { ensurePrivateDir, ensurePrivateFile } from '../core/private-files';
import { writeFileDurable } from '../core/durable-file';
import { defaultConfig, type Config } from './config';
import { ensureKeys } from './keys';
import type { NodeKeys } from '../core/node-identity';

/** Where the home is: --home, then VDFS_HOME, then $XDG_DATA_HOME/vdfs, then ~/.local/share/vdfs. */
export function resolveHomeDir(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.VDFS_HOME) return process.env.VDFS_HOME;
  const xdg = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(xdg, 'vdfs');
}

/**
 * Makes an existing home private (homes made before this were 0755 with 0644 files): the
 * home, keys/, staging/ and the default cache/ become 0700, config.json and the keys 0600.
 * index.db and its -wal/-shm are handled by openDb. Only what we own is changed; never throws
 * for a missing part.
 */
function tightenHome(dir: string): void {
  for (const d of [dir, join(dir, 'keys'), join(dir, 'staging'), join(dir, 'cache')]) {
    if (existsSync(d)) ensurePrivateDir(d, false); // a home someone else owns (sudo): left alone
  }
  ensurePrivateFile(join(dir, 'config.json'));
  for (const f of ['node.key', 'node.crt']) ensurePrivateFile(join(dir, 'keys', f));
}

/** One node's state directory: index.db, config.json, keys/, staging/, cache/. */
export class Home {
  readonly db: Db;
  readonly entries: EntryStore;
  readonly locations: LocationStore;
  readonly blobs: BlobStore;
  config: Config;

  private constructor(readonly dir: string) {
    tightenHome(dir);
    this.config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
    this.config = { ...defaultConfig(this.config.name), ...this.config };
    this.db = openDb(join(dir, 'index.db'), { memory: { cacheBytes: this.config['index.cacheSize'], mmapBytes: this.config['index.mmapSize'] } });
    this.entries = new EntryStore(this.db);
    this.locations = new LocationStore(this.db);
    this.blobs = new BlobStore(this.db);
  }

  get cacheDir(): string {
    return this.config['cache.dir'] || join(this.dir, 'cache');
  }

  get stagingDir(): string {
    return join(this.dir, 'staging');
  }

  /** Every folder holding vdfs state: never shown inside a location that contains it. */
  get statePaths(): string[] {
    return [this.dir, this.cacheDir, this.stagingDir];
  }

  private hiddenRels?: HiddenRels;

  /** The state folders inside each location, by location root (see index/state-paths.ts). */
  get hidden(): HiddenRels {
    return (this.hiddenRels ??= new HiddenRels(this.statePaths));
  }

  /** This node's id (SHA-256 of its certificate once keys exist). */
  get nodeId(): string {
    const id = new NodeStore(this.db).selfId();
    if (id === undefined) throw new FsError('EIO', `${this.dir}: the index has no self node row (run vdfs init)`);
    return id;
  }

  static isInitialised(dir: string): boolean {
    return existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'index.db'));
  }

  /** Opens an initialised home. Throws ENOENT with the command to run when it is not. */
  static open(dir: string): Home {
    if (!Home.isInitialised(dir)) throw new FsError('ENOENT', `no vdfs home at ${dir}: run \`vdfs init\` (or pass --home DIR / set VDFS_HOME)`);
    return new Home(dir);
  }

  /** Creates the home (idempotent: an existing home keeps its config, a new name is applied). */
  static init(dir: string, name?: string): { home: Home; created: boolean } {
    const created = !Home.isInitialised(dir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, 'keys'), { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, 'staging'), { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, 'cache'), { recursive: true, mode: 0o700 });
    const cfgFile = join(dir, 'config.json');
    if (!existsSync(cfgFile)) writeFileDurable(cfgFile, JSON.stringify(defaultConfig(name ?? hostname()), null, 2) + '\n');
    else if (name) {
      const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Config;
      writeFileDurable(cfgFile, JSON.stringify({ ...cfg, name }, null, 2) + '\n');
    }
    const home = new Home(dir);
    new NodeStore(home.db).ensureSelf(randomBytes(32).toString('hex'), home.config.name);
    return { home, created };
  }

  /**
   * `init` plus the node's key pair and certificate (created when missing, so an existing home
   * gets keys on its next init); the self node id becomes the certificate fingerprint.
   * Throws what init throws, and EIO when the keys cannot be written.
   */
  static async initWithKeys(dir: string, name?: string): Promise<{ home: Home; created: boolean; keys: NodeKeys }> {
    const r = Home.init(dir, name);
    const keys = await ensureKeys(dir, r.home.db, r.home.config.name);
    return { ...r, keys };
  }

  /** The node keys, created when missing (homes made before keys existed). Throws EIO. */
  keys(): Promise<NodeKeys> {
    return ensureKeys(this.dir, this.db, this.config.name);
  }

  saveConfig(cfg: Config): void {
    writeFileDurable(join(this.dir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
    this.config = cfg;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
