import { resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { FsError } from '../core/fs-error';
import type { Home } from './home';
import { mountFuse, type FuseBackend, type FuseMount } from '../mount/fuse/fuse-mount';
import { HashPool } from '../index/hash-pool';
import { shrinkMemory } from '../index/db';
import { fullGc, tuneGcForStreaming } from '../core/idle-gc';
import { loadNativeFuse } from '../core/native-addon';
import { acquireScanLock } from '../index/scan-lock';
import { scanLocalLocation } from '../index/scanner';
import { isListable, scanRemoteLocation } from '../index/remote-scan';
import type { Location } from '../index/locations';
import type { Provider } from '../core/provider';
import { LocationWatcher } from './watcher';
import { removeDaemonPid, writeDaemonPid } from './memory';
import { publishSwallowed } from './error-report';
import { startWebdav, type WebdavServer } from '../mount/webdav/server';
import { DEFAULT_LOCK_LIMITS } from '../mount/webdav/locks';
import { webdavAccess } from './webdav-access';
import { createVfs } from '../mount/vfs';
import { providerOpener } from './provider-registry';
import { renderStatusPage, STATUS_PAGE_CSP } from './status-page';
import type { OpenedBlockStore } from './block-store';
import type { BlockStore } from '../mount/vfs/blob-reader';
import type { VfsCore } from '../mount/vfs/vfs-core';
import { startPeerServices, type PeerServices } from './peer/peer-daemon';

export interface DaemonOptions {
  mountpoint?: string;
  /** Serve WebDAV on this address too. */
  webdav?: { host: string; port: number };
  /** Loopback only: WebDAV without credentials (every local user and process gets in). */
  webdavInsecureNoAuth?: boolean;
  allowOther?: boolean;
  /** FUSE front end: the native addon (default when it loads) or fuse-native. */
  fuseBackend?: FuseBackend;
  /** Native backend: kernel passthrough for read-only opens of local files (default false). */
  passthrough?: boolean;
  /** Native backend: FUSE over io_uring when the kernel offers it (default true). */
  fuseUring?: boolean;
  /** Serve paired peers on this address (peer locations are replicated whenever the home has keys). */
  peer?: { host: string; port: number };
  log: Logger;
  blocks: BlockStore;
}

export interface Daemon {
  vfs: VfsCore;
  fuse?: FuseMount;
  webdav?: WebdavServer;
  /** SHA-256 fingerprint of the WebDAV certificate when it is the node's self-signed one. */
  webdavFingerprint?: string;
  /** The user name of the home credential (absent without auth). */
  webdavUser?: string;
  peers?: PeerServices;
  stop(): Promise<void>;
}

function inside(child: string, parent: string): boolean {
  const c = resolve(child) + sep;
  const p = resolve(parent) + sep;
  return c.startsWith(p);
}

/** How often remote locations are checked for a poll that is due. */
const REMOTE_TICK_MS = 1000;
/** An S3 poll's interval is at least this many seconds per 1,000 keys listed last time. */
const S3_SECONDS_PER_PAGE = 10;

/**
 * Refuses a mount point that contains the home or a location (the daemon would do I/O on its
 * own mount, which deadlocks in the kernel). Throws FsError EINVAL.
 */
function checkMountpoint(home: Home, providers: (loc: Location) => Provider, mp: string): void {
  if (inside(home.dir, mp) || inside(home.cacheDir, mp)) throw new FsError('EINVAL', `the mount point ${mp} contains the vdfs home ${home.dir}; pick another`);
  for (const loc of home.locations.list()) {
    if (hasLocalFiles(providers, loc) && (inside(loc.uri, mp) || inside(mp, loc.uri)))
      throw new FsError('EINVAL', `the mount point ${mp} overlaps location ${loc.name} (${loc.uri}); pick a mount point outside every location`);
  }
}

/** The WebDAV front end with the home's credentials, TLS and status page. Throws what startWebdav and webdavAccess throw. */
async function startWebdavFrontEnd(
  home: Home,
  vfs: VfsCore,
  opts: DaemonOptions,
  listen: { host: string; port: number },
): Promise<Pick<Daemon, 'webdav' | 'webdavFingerprint' | 'webdavUser'>> {
  const access = await webdavAccess(home, listen.host, { insecureNoAuth: opts.webdavInsecureNoAuth });
  const statusPage = () => ({
    type: 'text/html; charset=utf-8',
    csp: STATUS_PAGE_CSP,
    body: renderStatusPage(home, { cache: 'cache' in opts.blocks ? (opts.blocks as OpenedBlockStore).cache?.stats() : undefined, pins: vfs.pins }),
  });
  const webdav = await startWebdav(vfs, {
    ...listen,
    statusPage,
    users: access.users,
    credential: access.credential,
    insecureNoAuth: access.insecureNoAuth,
    tls: access.tls,
    logger: opts.log,
    lockLimits: { ...DEFAULT_LOCK_LIMITS, maxTimeoutSec: home.config['webdav.lockTimeout'] },
  });
  if (access.insecureNoAuth) opts.log.warn('WebDAV serves WITHOUT authentication: every local user and process can read and write the share');
  if (access.fingerprint) opts.log.info({ fingerprint: access.fingerprint }, "WebDAV uses this node's self-signed certificate; check this SHA-256 fingerprint in your client");
  return { webdav, webdavFingerprint: access.fingerprint, webdavUser: access.credential?.user };
}

/** The peer services, WebDAV and the FUSE mount, as asked; on a failure, what was started is stopped again and the error thrown. */
async function startFrontEnds(home: Home, vfs: VfsCore, opts: DaemonOptions): Promise<Omit<Daemon, 'vfs' | 'stop'>> {
  const out: Omit<Daemon, 'vfs' | 'stop'> = {};
  try {
    out.peers = await startPeerServices(home, { listen: opts.peer, log: opts.log, changed: () => vfs.resolver.invalidate() });
    if (opts.webdav) Object.assign(out, await startWebdavFrontEnd(home, vfs, opts, opts.webdav));
    if (opts.mountpoint)
      out.fuse = await mountFuse(vfs, opts.mountpoint, {
        allowOther: opts.allowOther,
        backend: opts.fuseBackend,
        passthrough: opts.passthrough,
        uring: opts.fuseUring,
        maxNodes: home.config['fuse.maxNodes'],
        attrTimeout: home.config['fuse.attrTimeout'],
        entryTimeout: home.config['fuse.entryTimeout'],
        negativeTimeout: home.config['fuse.negativeTimeout'],
        log: opts.log,
      });
    return out;
  } catch (err) {
    await out.webdav?.close().catch(() => undefined);
    await out.peers?.stop().catch(() => undefined);
    throw err;
  }
}

type Rescan = (loc: Location, onListed?: (files: number) => void) => Promise<void>;

/**
 * Cloud locations have no inotify: their listing is polled (docs/vfs.md "Freshness"). A
 * provider with a change feed (`features.changeFeed`: Drive's changes.list) costs one request
 * when unchanged: every `scan.driveInterval` s. Others (S3) list the whole prefix (one request
 * per 1,000 keys): every `scan.remoteInterval` s, stretched to S3_SECONDS_PER_PAGE per page of
 * the last listing so a big bucket costs at most one LIST request per 10 s. Changes found reach
 * the kernel's caches through the resolver's invalidation (mount/fuse/invalidator.ts).
 * Returns the timer (undefined when both intervals are 0).
 */
function startRemotePoll(home: Home, vfs: VfsCore, rescan: Rescan, log: Logger): NodeJS.Timeout | undefined {
  if (home.config['scan.remoteInterval'] <= 0 && home.config['scan.driveInterval'] <= 0) return undefined;
  const nextPoll = new Map<number, number>();
  const pollEvery = (loc: Location, files: number) =>
    hasChangeFeed(vfs, loc) ? home.config['scan.driveInterval'] : Math.max(home.config['scan.remoteInterval'], S3_SECONDS_PER_PAGE * Math.ceil(files / 1000));
  const timer = setInterval(() => {
    const now = Date.now();
    for (const loc of home.locations.list()) {
      if (!polled(vfs, loc) || pollEvery(loc, 0) <= 0) continue;
      // The first poll comes one interval after start (or after the location appears), so
      // a `vdfs scan` run right after `vdfs mount` does not find the scan lock taken.
      if (!nextPoll.has(loc.id)) nextPoll.set(loc.id, now + pollEvery(loc, 0) * 1000);
      if (nextPoll.get(loc.id)! > now) continue;
      nextPoll.set(loc.id, Infinity); // one poll at a time per location
      let files = 0;
      void rescan(loc, (n) => (files = n))
        .catch((err) => log.debug({ location: loc.name, err: (err as Error).message }, 'remote poll failed'))
        .finally(() => nextPoll.set(loc.id, Date.now() + pollEvery(loc, files) * 1000));
    }
  }, REMOTE_TICK_MS);
  timer.unref();
  return timer;
}

/**
 * Keeps the index fresh while the daemon runs: inotify watches on local locations, a periodic
 * rescan behind them (missed events), the remote poll, and one rescan of every local location
 * at start (changes made while no daemon was watching). Returns what stops them. Never throws.
 */
function startFreshness(home: Home, vfs: VfsCore, log: Logger): () => void {
  // After a rescan, directories it indexed get their inotify watches (within the budget).
  const local = (loc: Location) => vfs.featuresOf(loc).localFiles;
  // One pool for every rescan: the start-up rescans run all at once, and a pool each started
  // two worker threads per location (14 threads for 7 locations, ~100 MB of the daemon's peak;
  // docs/fuse.md "Peak memory"). Its threads stop when idle.
  const pool = new HashPool(1);
  // A local rescan (at start, periodic, after a watch overflow) reads the whole location's
  // index: its garbage and page cache are not kept while idle (reclaimMemory).
  const rescan: Rescan = (loc, onListed) =>
    rescanLocation(home, vfs, pool, loc, onListed).then(() => {
      if (!local(loc)) return;
      watcher.watchLocation(loc);
      reclaimMemory(vfs);
    });
  const watcher: LocationWatcher = new LocationWatcher(home, vfs, log, rescan);
  watcher.start();
  // The safety net behind inotify (missed events, changes while we were down).
  const interval = home.config['scan.interval'];
  const periodic =
    interval > 0
      ? setInterval(() => {
          for (const loc of home.locations.list()) {
            if (local(loc) && loc.online) void rescan(loc).catch((err) => log.warn({ location: loc.name, err: (err as Error).message }, 'periodic rescan failed'));
          }
        }, interval * 1000)
      : undefined;
  periodic?.unref();
  const remotePoll = startRemotePoll(home, vfs, rescan, log);
  // Changes made while no daemon was watching: one rescan at start, in the background.
  for (const loc of home.locations.list()) {
    if (local(loc)) {
      void rescan(loc).then(
        () => log.info({ location: loc.name }, 'start-up rescan done'),
        (err) => log.warn({ location: loc.name, err: (err as Error).message }, 'start-up rescan failed'),
      );
    }
  }
  // A cloud client's first request pays for its setup (credentials, signing, endpoint rules, a
  // connection): 20–35 ms measured on S3. Paid now, in the background, rather than by the first
  // reader of a file (docs/read-pipeline.md). The answer is not used: reads decide online-ness.
  for (const loc of home.locations.list()) {
    if (!polled(vfs, loc)) continue;
    const p = vfs.providers.get(loc);
    void (p.warmUp ? p.warmUp() : p.isOnline()).catch(() => undefined);
  }
  return () => {
    watcher.stop();
    if (periodic) clearInterval(periodic);
    if (remotePoll) clearInterval(remotePoll);
    void pool.close();
  };
}

/**
 * Starts the long-running part of vdfs: the VFS, the front ends asked for (peer server,
 * WebDAV, the FUSE mount), peer replication and the index's freshness (watches, rescans,
 * polls). Refuses a mount point that contains the home or a location (checkMountpoint).
 * Throws FsError EINVAL/EIO, or what a front end throws when it cannot start.
 */
export async function startDaemon(home: Home, opts: DaemonOptions): Promise<Daemon> {
  tuneGcForStreaming();
  const providers = providerOpener(home);
  if (opts.mountpoint) checkMountpoint(home, providers, opts.mountpoint);
  const vfs = await createVfs(home, { blocks: opts.blocks, log: opts.log, uploads: true, openProvider: providers });
  let fronts: Omit<Daemon, 'vfs' | 'stop'>;
  try {
    fronts = await startFrontEnds(home, vfs, opts);
  } catch (err) {
    await vfs.close();
    throw err;
  }
  writeDaemonPid(home.dir);
  const stopPublishing = publishSwallowed(home.dir);
  const stopFreshness = startFreshness(home, vfs, opts.log);
  vfs.pins.start(() => vfs.resolver.changes); // pinned content fetched in the background, files added to pinned folders too
  let stopping: Promise<void> | undefined;
  return {
    vfs,
    ...fronts,
    stop() {
      stopping ??= (async () => {
        stopFreshness();
        await fronts.webdav?.close().catch(() => undefined);
        await fronts.peers?.stop().catch(() => undefined);
        await fronts.fuse?.unmount();
        await vfs.close();
        stopPublishing();
        removeDaemonPid(home.dir);
      })();
      return stopping;
    },
  };
}

/** Whether the location's source is files on this machine (capabilities, not the kind); false when it cannot be opened. */
function hasLocalFiles(open: (loc: Location) => Provider, loc: Location): boolean {
  let p: Provider;
  try {
    p = open(loc);
  } catch {
    return false;
  }
  void p.close().catch(() => undefined); // opened for this check only
  return p.features.localFiles;
}

/** Whether the location's listing comes from a change feed (`features.changeFeed`); false when it cannot be opened. */
function hasChangeFeed(vfs: VfsCore, loc: Location): boolean {
  try {
    return !!vfs.providers.get(loc).features.changeFeed;
  } catch {
    return false;
  }
}

/** A cloud location whose listing the daemon polls (no inotify there); false when it cannot be opened. */
function polled(vfs: VfsCore, loc: Location): boolean {
  try {
    const p = vfs.providers.get(loc);
    return !p.features.localFiles && isListable(p);
  } catch {
    return false;
  }
}

/**
 * After a burst of work: the index connection's page cache shrunk (the watches set up after
 * each rescan read the index again, after the rescan's own shrink), a full garbage collection
 * and the allocator's free pages back to the system.
 */
function reclaimMemory(vfs: VfsCore): void {
  vfs.shrinkCaches();
  fullGc(true);
  loadNativeFuse().addon?.trimMemory?.();
}

/** A full rescan of one local location from inside the daemon (skipped while a CLI scan holds the lock). */
async function rescanLocation(home: Home, vfs: VfsCore, pool: HashPool, loc: Location, onListed?: (files: number) => void): Promise<void> {
  let release: () => void;
  try {
    release = acquireScanLock(home.dir, loc.name);
  } catch {
    return; // someone else is scanning it right now
  }
  try {
    const ctx = {
      db: home.db,
      entries: home.entries,
      blobs: home.blobs,
      locations: home.locations,
      pool,
      blockSize: home.config.blockSize,
      statePaths: home.statePaths,
      sharedConnection: true,
    };
    const provider = vfs.providers.get(loc);
    if (provider.features.localFiles) await scanLocalLocation(ctx, loc, loc.uri);
    else if (isListable(provider)) onListed?.((await scanRemoteLocation(ctx, loc, provider)).files);
  } finally {
    vfs.resolver.invalidate();
    shrinkMemory(home.db); // the rescan read the whole index through the page cache
    release();
  }
}
