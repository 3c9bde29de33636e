import { promises as fsp, watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { IgnoreRules } from '../index/ignore-rules';
import type { Location } from '../index/locations';
import type { Home } from './home';
import type { VfsCore } from './vfs/vfs-core';
import { fdPath, openDirBeneath } from '../providers/local/beneath';
import { splitPath } from '../providers/paths';

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
const ONLINE_POLL_MS = 2000;
const MAX_SUBTREE = 20_000;

/**
 * Keeps the index of local locations live while the daemon runs: inotify (recursive
 * fs.watch) events are debounced per path and each changed path is brought in line with
 * the disk (new directories with their whole subtree); roots are polled so a drive that
 * disappears is marked offline and one that comes back online again, then rescanned.
 */
export class LocationWatcher {
  private readonly watchers = new Map<number, FSWatcher>();
  private readonly pending = new Map<number, Set<string>>();
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
    return this.home.locations.list().filter((l) => l.kind === 'local');
  }

  private watchLocation(loc: Location): void {
    if (this.watchers.has(loc.id) || this.stopped) return;
    try {
      const w = watch(loc.uri, { recursive: true, persistent: false }, (_event, name) => {
        if (typeof name === 'string') this.queue(loc, name);
      });
      w.on('error', (err) => {
        this.log.warn({ location: loc.name, err: err.message }, 'watch stopped');
        w.close();
        this.watchers.delete(loc.id);
      });
      this.watchers.set(loc.id, w);
    } catch (err) {
      this.log.warn({ location: loc.name, err: (err as Error).message }, 'cannot watch location; relying on periodic rescans');
    }
  }

  private queue(loc: Location, rel: string): void {
    // Our own writes to a home inside the location (index.db-wal, cache blocks): not indexed.
    if (this.home.hidden.hides(loc.uri, rel)) return;
    const rules = this.rules(loc);
    if (rel.split('/').some((_, i, parts) => rules.ignores(parts.slice(0, i + 1).join('/'), i < parts.length - 1))) return;
    let set = this.pending.get(loc.id);
    if (!set) this.pending.set(loc.id, (set = new Set()));
    set.add(rel);
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
      for (const rel of [...paths].sort((a, b) => a.split('/').length - b.split('/').length)) {
        try {
          await this.syncPath(loc, rel, { n: 0 });
        } catch (err) {
          this.log.debug({ location: loc.name, rel, err: (err as Error).message }, 'could not index change');
        }
      }
    }
  }

  /** Brings one path (and, for a directory new to the index, its subtree) in line with the disk. */
  private async syncPath(loc: Location, rel: string, budget: { n: number }): Promise<void> {
    if (this.stopped || ++budget.n > MAX_SUBTREE) return;
    const known = this.home.entries.resolve(loc.id, rel);
    const e = await this.vfs.writer.refresh(loc, rel);
    if (e?.type !== 'dir') return;
    const names = await listBeneath(loc.uri, rel).catch(() => [] as string[]);
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
      const online = await fsp.stat(loc.uri).then((s) => s.isDirectory(), () => false);
      if (online === loc.online) continue;
      this.home.locations.setOnline(loc.id, online);
      this.vfs.resolver.invalidate();
      this.log.info({ location: loc.name }, online ? 'location is back online' : 'location went offline');
      if (online) {
        this.watchLocation(loc);
        void this.rescan(loc).catch((err) => this.log.warn({ location: loc.name, err: (err as Error).message }, 'rescan failed'));
      } else {
        this.watchers.get(loc.id)?.close();
        this.watchers.delete(loc.id);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.poller) clearInterval(this.poller);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
