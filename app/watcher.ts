import { noteSwallowed } from '../core/swallowed';
import { promises as fsp, watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { IgnoreRules } from '../index/ignore-rules';
import type { Location } from '../index/locations';
import type { Home } from './home';
import type { VfsCore } from '../mount/vfs/vfs-core';
import { fdPath, openDirBeneath } from '../core/beneath';
import { splitPath } from '../core/paths';

/** The names in directory `rel` of a location, opened without following symlinks on the way. */
async function listBeneath(root: string, rel: string): Promise<string[]> {
  const dh = await openDirBeneath(root, splitPath(rel), rel);
  try {
    return await fsp.readdir(fdPath(dh));
  } finally {
    await dh.close().catch(() => undefined);
  }
}

const DEBOUNCE_MS = 150;
/**
 * inotify watches this daemon takes at most, over every location (the kernel's default
 * fs.inotify.max_user_watches is 8192 on older systems, ~1M on newer ones, shared by every
 * program of the user). Directories past the budget are covered by the periodic rescan
 * (`scan.interval`); see docs/scale.md.
 */
export const MAX_WATCHES = 4096;
const ONLINE_POLL_MS = 2000;
const MAX_SUBTREE = 20_000;

/**
 * Keeps the index of local locations live while the daemon runs: one inotify watch per
 * directory (non-recursive fs.watch), taken breadth-first from the index up to MAX_WATCHES
 * in all, so the top of every tree is live and a million folders do not exhaust the kernel's
 * watches (Node's recursive watch would also hold every path in memory). Events are debounced
 * per path and each changed path is brought in line with the disk (new directories with their
 * whole subtree, and a watch while the budget lasts); deeper changes wait for the periodic
 * rescan. Roots are polled so a drive that disappears is marked offline and one that comes
 * back online again, then rescanned.
 */
export class LocationWatcher {
  /** location id -> relative directory path -> its watch. */
  private readonly watchers = new Map<number, Map<string, FSWatcher>>();
  private watchCount = 0;
  /** Paths to refresh by location; true: a name came or went there, so its folder's row (mtime, links) is refreshed too. */
  private readonly pending = new Map<number, Map<string, boolean>>();
  private timer?: NodeJS.Timeout;
  private poller?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly home: Home,
    private readonly vfs: VfsCore,
    private readonly log: Logger,
    private readonly rescan: (loc: Location) => Promise<void>,
  ) {}

  start(): void {
    for (const loc of this.locals()) this.watchLocation(loc);
    this.poller = setInterval(() => void this.pollOnline(), ONLINE_POLL_MS);
    this.poller.unref();
  }

  private readonly ruleCache = new Map<number, IgnoreRules>();

  /** The location's ignore rules: OS junk and our own temporaries never enter the index. */
  private rules(loc: Location): IgnoreRules {
    let r = this.ruleCache.get(loc.id);
    if (!r) this.ruleCache.set(loc.id, (r = new IgnoreRules(loc.options.ignore)));
    return r;
  }

  private locals(): Location[] {
    return this.home.locations.list().filter((l) => this.vfs.featuresOf(l).localFiles);
  }

  /**
   * Watches the location's directories, breadth-first from the index, while the budget lasts.
   * Called again after each rescan: directories the scan indexed get their watches then.
   */
  watchLocation(loc: Location): void {
    if (this.stopped) return;
    if (!this.watchers.has(loc.id)) this.watchers.set(loc.id, new Map());
    const mine = this.watchers.get(loc.id)!;
    const root = this.home.entries.root(loc.id);
    if (!mine.has('') && !this.watchDir(loc, '')) return;
    if (!root) return;
    // The queue holds at most MAX_WATCHES directories: the walk stops with the budget.
    let level: { id: number; rel: string }[] = [{ id: root.id, rel: '' }];
    while (level.length > 0 && this.watchCount < MAX_WATCHES) {
      const next: { id: number; rel: string }[] = [];
      for (const d of level) {
        for (const c of this.home.entries.childDirs(d.id)) {
          if (this.watchCount >= MAX_WATCHES) break;
          const rel = d.rel === '' ? c.name : `${d.rel}/${c.name}`;
          if (this.home.hidden.hides(loc.uri, rel)) continue;
          if (mine.has(rel) || this.watchDir(loc, rel)) next.push({ id: c.id, rel });
        }
      }
      level = next;
    }
    if (this.watchCount >= MAX_WATCHES)
      this.log.debug({ location: loc.name, watches: MAX_WATCHES }, 'watch budget reached; deeper folders are kept up to date by the periodic rescan');
  }

  /** One non-recursive watch on directory `rel`; false when over budget or it cannot be watched. */
  private watchDir(loc: Location, rel: string): boolean {
    const mine = this.watchers.get(loc.id);
    if (!mine || this.stopped || mine.has(rel) || this.watchCount >= MAX_WATCHES) return false;
    try {
      const w = watch(rel === '' ? loc.uri : `${loc.uri}/${rel}`, { persistent: false }, (event, name) => {
        if (typeof name === 'string') this.queue(loc, rel === '' ? name : `${rel}/${name}`, event === 'rename');
      });
      w.on('error', () => this.unwatchDir(loc.id, rel));
      mine.set(rel, w);
      this.watchCount++;
      return true;
    } catch (err) {
      if (rel === '') this.log.warn({ location: loc.name, err: (err as Error).message }, 'cannot watch location; relying on periodic rescans');
      return false;
    }
  }

  private unwatchDir(locId: number, rel: string): void {
    const mine = this.watchers.get(locId);
    const w = mine?.get(rel);
    if (!w) return;
    w.close();
    mine!.delete(rel);
    this.watchCount--;
  }

  private unwatchLocation(locId: number): void {
    for (const rel of [...(this.watchers.get(locId)?.keys() ?? [])]) this.unwatchDir(locId, rel);
    this.watchers.delete(locId);
  }

  private queue(loc: Location, rel: string, named: boolean): void {
    // Our own writes to a home inside the location (index.db-wal, cache blocks): not indexed.
    if (this.home.hidden.hides(loc.uri, rel)) return;
    if (this.rules(loc).ignoresPath(rel)) return;
    let set = this.pending.get(loc.id);
    if (!set) this.pending.set(loc.id, (set = new Map()));
    set.set(rel, named || set.get(rel) === true);
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, DEBOUNCE_MS);
    }
  }

  private async flush(): Promise<void> {
    const batches = [...this.pending];
    this.pending.clear();
    for (const [locId, paths] of batches) {
      const loc = this.home.locations.byId(locId);
      if (!loc) continue;
      // Parents first, so a new directory is indexed before its children.
      for (const [rel, named] of [...paths].sort(([a], [b]) => a.split('/').length - b.split('/').length)) {
        // Most events of a `tar x` into the mount are the daemon's own writes, already indexed.
        if (this.vfs.writer.unchanged(loc, rel)) continue;
        try {
          await this.syncPath(loc, rel, { n: 0 }, named);
        } catch (err) {
          this.log.debug({ location: loc.name, rel, err: (err as Error).message }, 'could not index change');
        }
      }
    }
  }

  /**
   * Brings one path (and, for a directory new to the index, its subtree) in line with the disk;
   * with `folder`, the row of the folder it is in as well.
   */
  private async syncPath(loc: Location, rel: string, budget: { n: number }, folder = false): Promise<void> {
    if (this.stopped || ++budget.n > MAX_SUBTREE) return;
    const known = this.home.entries.resolve(loc.id, rel);
    // Watched before it is indexed: a file made in a new folder right after the folder shows
    // up in the index is an event of that watch, never lost in between.
    if (!known || known.type === 'dir') this.watchDir(loc, rel);
    const e = await this.vfs.writer.refresh(loc, rel, true, folder);
    if (e?.type !== 'dir') {
      this.unwatchDir(loc.id, rel); // removed, or not a directory
      return;
    }
    let names: string[];
    try {
      names = await listBeneath(loc.uri, rel);
    } catch (err) {
      // An unreadable listing is not an empty directory: its children stay as indexed.
      noteSwallowed(this.log, 'watcher: listing a changed directory', err, { location: loc.name, rel });
      return;
    }
    const children = new Set(this.home.entries.children(e.id).map((c) => c.name));
    const rules = this.rules(loc);
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (rules.ignores(childRel, false)) continue;
      if (!known || !children.has(name)) await this.syncPath(loc, childRel, budget);
    }
    for (const name of children) {
      if (!names.includes(name)) await this.vfs.writer.refresh(loc, `${rel}/${name}`);
    }
  }

  private async pollOnline(): Promise<void> {
    for (const loc of this.locals()) {
      const online = await fsp.stat(loc.uri).then(
        (s) => s.isDirectory(),
        () => false,
      );
      if (online === loc.online) continue;
      this.home.locations.setOnline(loc.id, online);
      this.vfs.resolver.invalidate();
      this.log.info({ location: loc.name }, online ? 'location is back online' : 'location went offline');
      if (online) {
        this.watchLocation(loc);
        void this.rescan(loc).catch((err) => this.log.warn({ location: loc.name, err: (err as Error).message }, 'rescan failed'));
      } else this.unwatchLocation(loc.id);
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.poller) clearInterval(this.poller);
    for (const id of [...this.watchers.keys()]) this.unwatchLocation(id);
  }
}
