import { resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { FsError } from '../core/fs-error';
import type { Home } from './home';
import { mountFuse, type FuseBackend, type FuseMount } from '../mount/fuse/fuse-mount';
import { HashPool } from '../index/hash-pool';
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

/**
 * Starts the long-running part of vdfs: the VFS, and the FUSE mount when asked.
 * Refuses a mount point that contains the home or a location (the daemon would do I/O on
 * its own mount, which deadlocks in the kernel). Throws FsError EINVAL/EIO.
 */
/** How often remote locations are checked for a poll that is due. */
const REMOTE_TICK_MS = 1000;
/** An S3 poll's interval is at least this many seconds per 1,000 keys listed last time. */
const S3_SECONDS_PER_PAGE = 10;

export async function startDaemon(home: Home, opts: DaemonOptions): Promise<Daemon> {
  const providers = providerOpener(home);
  if (opts.mountpoint) {
    const mp = opts.mountpoint;
    if (inside(home.dir, mp) || inside(home.cacheDir, mp)) throw new FsError('EINVAL', `the mount point ${mp} contains the vdfs home ${home.dir}; pick another`);
    for (const loc of home.locations.list()) {
      if (hasLocalFiles(providers, loc) && (inside(loc.uri, mp) || inside(mp, loc.uri)))
        throw new FsError('EINVAL', `the mount point ${mp} overlaps location ${loc.name} (${loc.uri}); pick a mount point outside every location`);
    }
  }
  const vfs = await createVfs(home, { blocks: opts.blocks, log: opts.log, uploads: true, openProvider: providers });
  let fuse: FuseMount | undefined;
  let webdav: WebdavServer | undefined;
  let webdavFingerprint: string | undefined;
  let webdavUser: string | undefined;
  let peers: PeerServices | undefined;
  try {
    peers = await startPeerServices(home, { listen: opts.peer, log: opts.log, changed: () => vfs.resolver.invalidate() });
    if (opts.webdav) {
      const access = await webdavAccess(home, opts.webdav.host, { insecureNoAuth: opts.webdavInsecureNoAuth });
      const statusPage = () => ({
        type: 'text/html; charset=utf-8',
        csp: STATUS_PAGE_CSP,
        body: renderStatusPage(home, { cache: 'cache' in opts.blocks ? (opts.blocks as OpenedBlockStore).cache?.stats() : undefined, pins: vfs.pins }),
      });
      webdav = await startWebdav(vfs, {
        ...opts.webdav,
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
      webdavFingerprint = access.fingerprint;
      webdavUser = access.credential?.user;
    }
    if (opts.mountpoint) fuse = await mountFuse(vfs, opts.mountpoint, { allowOther: opts.allowOther, backend: opts.fuseBackend, passthrough: opts.passthrough, log: opts.log });
  } catch (err) {
    await webdav?.close().catch(() => undefined);
    await peers?.stop().catch(() => undefined);
    await vfs.close();
    throw err;
  }
  writeDaemonPid(home.dir);
  const stopPublishing = publishSwallowed(home.dir);
  // After a rescan, directories it indexed get their inotify watches (within the budget).
  const local = (loc: Location) => vfs.featuresOf(loc).localFiles;
  const rescan = (loc: Location, onListed?: (files: number) => void) =>
    rescanLocation(home, vfs, loc, onListed).then(() => {
      if (local(loc)) watcher.watchLocation(loc);
    });
  const watcher: LocationWatcher = new LocationWatcher(home, vfs, opts.log, rescan);
  watcher.start();
  vfs.pins.start(); // pinned content fetched in the background, files added to pinned folders too
  // The safety net behind inotify (missed events, changes while we were down).
  const interval = home.config['scan.interval'];
  const periodic =
    interval > 0
      ? setInterval(() => {
          for (const loc of home.locations.list()) {
            if (local(loc) && loc.online) void rescan(loc).catch((err) => opts.log.warn({ location: loc.name, err: (err as Error).message }, 'periodic rescan failed'));
          }
        }, interval * 1000)
      : undefined;
  periodic?.unref();
  // Cloud locations have no inotify: their listing is polled (docs/vfs.md "Freshness"). Drive
  // answers from changes.list, so an unchanged drive costs one request: every
  // `scan.driveInterval` s. An S3 poll lists the whole prefix (one request per 1,000 keys):
  // every `scan.remoteInterval` s, stretched to S3_SECONDS_PER_PAGE per page of the last
  // listing so a big bucket costs at most one LIST request per 10 s. Changes found reach the
  // kernel's caches through the resolver's invalidation (mount/fuse/invalidator.ts).
  const nextPoll = new Map<number, number>();
  const pollEvery = (loc: Location, files: number) =>
    loc.kind === 'gdrive' ? home.config['scan.driveInterval'] : Math.max(home.config['scan.remoteInterval'], S3_SECONDS_PER_PAGE * Math.ceil(files / 1000));
  const remotePoll =
    home.config['scan.remoteInterval'] > 0 || home.config['scan.driveInterval'] > 0
      ? setInterval(() => {
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
              .catch((err) => opts.log.debug({ location: loc.name, err: (err as Error).message }, 'remote poll failed'))
              .finally(() => nextPoll.set(loc.id, Date.now() + pollEvery(loc, files) * 1000));
          }
        }, REMOTE_TICK_MS)
      : undefined;
  remotePoll?.unref();
  // Changes made while no daemon was watching: one rescan at start, in the background.
  for (const loc of home.locations.list()) {
    if (local(loc)) {
      void rescan(loc).then(
        () => opts.log.info({ location: loc.name }, 'start-up rescan done'),
        (err) => opts.log.warn({ location: loc.name, err: (err as Error).message }, 'start-up rescan failed'),
      );
    }
  }
  // A cloud client's first request pays for its setup (credentials, signing, endpoint rules, a
  // connection): 20–35 ms measured on S3. Paid now, in the background, rather than by the first
  // reader of a file (docs/read-pipeline.md). The answer is not used: reads decide online-ness.
  for (const loc of home.locations.list()) {
    if (polled(vfs, loc))
      void vfs.providers
        .get(loc)
        .isOnline()
        .catch(() => undefined);
  }
  let stopping: Promise<void> | undefined;
  return {
    vfs,
    fuse,
    webdav,
    webdavFingerprint,
    webdavUser,
    peers,
    stop() {
      stopping ??= (async () => {
        watcher.stop();
        if (periodic) clearInterval(periodic);
        if (remotePoll) clearInterval(remotePoll);
        await webdav?.close().catch(() => undefined);
        await peers?.stop().catch(() => undefined);
        await fuse?.unmount();
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

/** A cloud location whose listing the daemon polls (no inotify there); false when it cannot be opened. */
function polled(vfs: VfsCore, loc: Location): boolean {
  try {
    const p = vfs.providers.get(loc);
    return !p.features.localFiles && isListable(p);
  } catch {
    return false;
  }
}

/** A full rescan of one local location from inside the daemon (skipped while a CLI scan holds the lock). */
async function rescanLocation(home: Home, vfs: VfsCore, loc: Location, onListed?: (files: number) => void): Promise<void> {
  let release: () => void;
  try {
    release = acquireScanLock(home.dir, loc.name);
  } catch {
    return; // someone else is scanning it right now
  }
  const pool = new HashPool(1);
  try {
    const ctx = { db: home.db, entries: home.entries, blobs: home.blobs, locations: home.locations, pool, blockSize: home.config.blockSize, statePaths: home.statePaths };
    const provider = vfs.providers.get(loc);
    if (provider.features.localFiles) await scanLocalLocation(ctx, loc, loc.uri);
    else if (isListable(provider)) onListed?.((await scanRemoteLocation(ctx, loc, provider)).files);
  } finally {
    vfs.resolver.invalidate();
    await pool.close();
    release();
  }
}
