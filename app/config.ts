import { FsError } from '../core/fs-error';

/** Settings kept in the home's config.json. Unknown keys are refused so typos surface. */
export interface Config {
  name: string;
  blockSize: number;
  'cache.maxSize': number;
  'cache.memorySize': number;
  'cache.dir': string;
  /** SQLite page cache of the index, bytes (per open connection). */
  'index.cacheSize': number;
  /** Bytes of index.db SQLite may map into memory (0: read through the page cache only). Counts in RSS. */
  'index.mmapSize': number;
  /** Byte budget of the daemon's path -> entry cache (the resolver's LRU). */
  'resolver.cacheSize': number;
  /** FUSE nodes the daemon keeps (~200 bytes each) before it asks the kernel to drop the oldest cached names. */
  'fuse.maxNodes': number;
  /** Seconds the kernel may keep a file's attributes (external changes reach it sooner: the daemon invalidates them). */
  'fuse.attrTimeout': number;
  /** Seconds the kernel may keep a name it looked up (likewise invalidated on a change). */
  'fuse.entryTimeout': number;
  /** Seconds the kernel may remember that a name does not exist (native backend; likewise invalidated when the index gets it). */
  'fuse.negativeTimeout': number;
  'scan.interval': number;
  /**
   * Seconds between polls of S3 locations' listings while the daemon runs (0: never); stretched
   * to 10 s per 1,000 keys of the last listing, so a big bucket costs at most one LIST per 10 s.
   */
  'scan.remoteInterval': number;
  /** Seconds between polls of Drive locations (changes.list: one request when nothing changed; 0: never). */
  'scan.driveInterval': number;
  /** Seconds a staged file must stay unchanged before it is uploaded. */
  'upload.delay': number;
  /** PEM files for WebDAV over TLS on a non-loopback address (default: the node's self-signed certificate). */
  'webdav.tlsCert': string;
  'webdav.tlsKey': string;
  /** Longest WebDAV lock, in seconds (Infinite requests get this); a depth-infinity lock on a whole location never outlives it. */
  'webdav.lockTimeout': number;
  /**
   * Seconds the peer port gives a connection to finish its TLS handshake, and then each request
   * (headers and body); also its keep-alive idle limit. A client that stalls longer is cut off.
   */
  'peer.requestTimeout': number;
  /** Distinct locations every file's content should be on; `vdfs copies` lists what has fewer. */
  'copies.min': number;
  /** Limit of the pinned area of the cache (content kept on this device, never evicted). */
  'cache.pinnedMax': number;
}

export type ConfigKey = keyof Config;

export const DEFAULT_BLOCK_SIZE = 1 << 20;

export function defaultConfig(name: string): Config {
  return {
    name,
    blockSize: DEFAULT_BLOCK_SIZE,
    'cache.maxSize': 10 * 1024 ** 3,
    'cache.memorySize': 64 * 1024 ** 2,
    'cache.dir': '',
    'index.cacheSize': 16 * 1024 ** 2,
    'index.mmapSize': 0,
    'resolver.cacheSize': 16 * 1024 ** 2,
    'fuse.maxNodes': 100_000,
    'fuse.attrTimeout': 10,
    'fuse.entryTimeout': 10,
    'fuse.negativeTimeout': 10,
    'scan.interval': 600,
    'upload.delay': 2,
    'scan.remoteInterval': 120,
    'scan.driveInterval': 60,
    'webdav.tlsCert': '',
    'webdav.tlsKey': '',
    'webdav.lockTimeout': 3600,
    'peer.requestTimeout': 30,
    'copies.min': 2,
    'cache.pinnedMax': 10 * 1024 ** 3,
  };
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Parses "10GiB", "512MiB", "1.5GB", "4096". Throws EINVAL. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new FsError('EINVAL', `cannot read ${JSON.stringify(text)} as a size (try 10GiB, 512MiB, 1000000)`);
  return Math.round(Number(m[1]) * unit);
}

export function formatSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function fuseTimeout(key: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 3600) throw new FsError('EINVAL', `${key}: seconds from 0 to 3600 (0: the kernel asks every time)`);
  return n;
}

const PARSERS: { [K in ConfigKey]: (v: string) => Config[K] } = {
  name: (v) => {
    if (!/^[\w.-]{1,64}$/.test(v)) throw new FsError('EINVAL', 'name: use 1-64 letters, digits, ".", "_" or "-"');
    return v;
  },
  blockSize: () => {
    throw new FsError('EINVAL', 'blockSize is set once when the home is created');
  },
  'cache.maxSize': (v) => parseSize(v),
  'cache.memorySize': (v) => parseSize(v),
  'cache.dir': (v) => v,
  'index.cacheSize': (v) => parseSize(v),
  'index.mmapSize': (v) => parseSize(v),
  'resolver.cacheSize': (v) => parseSize(v),
  'fuse.maxNodes': (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 100) throw new FsError('EINVAL', 'fuse.maxNodes: a whole number of nodes, at least 100');
    return n;
  },
  'fuse.attrTimeout': (v) => fuseTimeout('fuse.attrTimeout', v),
  'fuse.entryTimeout': (v) => fuseTimeout('fuse.entryTimeout', v),
  'fuse.negativeTimeout': (v) => fuseTimeout('fuse.negativeTimeout', v),
  'scan.interval': (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new FsError('EINVAL', 'scan.interval: seconds, 0 to disable');
    return n;
  },
  'scan.remoteInterval': (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new FsError('EINVAL', 'scan.remoteInterval: seconds, 0 to disable');
    return n;
  },
  'scan.driveInterval': (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new FsError('EINVAL', 'scan.driveInterval: seconds, 0 to disable');
    return n;
  },
  'webdav.tlsCert': (v) => v,
  'webdav.tlsKey': (v) => v,
  'webdav.lockTimeout': (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1 || n > 86_400) throw new FsError('EINVAL', 'webdav.lockTimeout: whole seconds, 1 to 86400');
    return n;
  },
  'peer.requestTimeout': (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0.5 || n > 300) throw new FsError('EINVAL', 'peer.requestTimeout: seconds from 0.5 to 300');
    return n;
  },
  'copies.min': (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1 || n > 100) throw new FsError('EINVAL', 'copies.min: a whole number of copies, 1 to 100');
    return n;
  },
  'cache.pinnedMax': (v) => parseSize(v),
  'upload.delay': (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > 86400) throw new FsError('EINVAL', 'upload.delay: seconds from 0 to 86400');
    return n;
  },
};

export function isConfigKey(key: string): key is ConfigKey {
  return Object.prototype.hasOwnProperty.call(PARSERS, key);
}

/** Returns a new config with `key` set from text. Throws EINVAL for an unknown key or bad value. */
export function setConfigValue(cfg: Config, key: string, value: string): Config {
  if (!isConfigKey(key)) throw new FsError('EINVAL', `unknown config key ${JSON.stringify(key)}; known: ${Object.keys(PARSERS).join(', ')}`);
  return { ...cfg, [key]: PARSERS[key](value) };
}
