import { noteSwallowed } from '../../core/swallowed';
import type { Logger } from 'pino';
import type { PinnedArea } from '../../cache/pinned-area';
import type { Entry } from '../../index/entries';
import type { Location } from '../../index/locations';
import { PinStore, type Pin } from '../../index/pins';
import { filesUnder } from '../../index/subtree';
import { FsError } from '../../core/fs-error';
import type { VfsHome } from './vfs-home';
import { fetchVerified } from './verified-fetch';
import { virtualPath } from './namespace';
import type { Replicas } from './replicas';

/** One pin as `vdfs pin --list --json` shows it. */
export interface PinState {
  path: string;
  /** `fetched`: all its content is here; `fetching`: some is still to come; `over-limit`: some does not fit cache.pinnedMax; `missing`: the path is no longer in the index. */
  state: 'fetched' | 'fetching' | 'over-limit' | 'missing';
  files: number;
  bytes: number;
  fetchedFiles: number;
  fetchedBytes: number;
  /** Files whose content is not hashed yet (cloud files before `vdfs scan LOC --hash`): they cannot be fetched verified. */
  unhashed: number;
  createdAt: string;
}

/** The `vdfs pin --list --json` document; `bytes` counts each content once. */
export interface PinsReport {
  maxBytes: number;
  bytes: number;
  fetchedBytes: number;
  pins: PinState[];
}

interface Wanted {
  /** Per pin: its files (undefined when its path is gone). */
  byPin: Map<number, { id: number; hash: string | null; size: number }[] | undefined>;
  /** Every content wanted, in pin order, with its size. */
  hashes: Map<string, number>;
}

/**
 * Pins: content kept on this device in the cache's pinned area. The wanted set is computed
 * from the index every time, so a file added to a pinned folder later is wanted as soon as it
 * is indexed. Content is fetched from the locations (best replica first), verified per block.
 */
export class Pins {
  readonly store: PinStore;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly home: VfsHome,
    readonly area: PinnedArea,
    private readonly replicas: Replicas,
    private readonly log?: Logger,
  ) {
    this.store = new PinStore(home.db);
  }

  private entryOf(p: Pin): { loc: Location; entry: Entry } | undefined {
    const loc = this.home.locations.byId(p.locationId);
    const entry = loc ? this.home.entries.resolve(loc.id, p.path) : undefined;
    return loc && entry ? { loc, entry } : undefined;
  }

  wanted(pins: Pin[] = this.store.list()): Wanted {
    const byPin: Wanted['byPin'] = new Map();
    const hashes = new Map<string, number>();
    for (const p of pins) {
      const r = this.entryOf(p);
      const files = r ? filesUnder(this.home.db, r.entry.id) : undefined;
      byPin.set(p.id, files);
      for (const f of files ?? []) if (f.hash && f.size > 0) hashes.set(f.hash, f.size);
    }
    return { byPin, hashes };
  }

  /** The wanted contents that fit cache.pinnedMax, taken in pin order (earlier pins first). */
  private withinLimit(w: Wanted): Set<string> {
    const max = this.home.config['cache.pinnedMax'];
    const ok = new Set<string>();
    let total = 0;
    for (const [h, size] of w.hashes) {
      if (total + size > max) continue;
      total += size;
      ok.add(h);
    }
    return ok;
  }

  /**
   * Adds pins for resolved entries, all or nothing: throws ENOSPC (nothing pinned) when the
   * content of every pin together would not fit cache.pinnedMax.
   */
  add(targets: { loc: Location; rel: string }[]): { added: number; bytes: number } {
    const current = this.store.list();
    const extra = targets.map((t, i) => ({ id: -1 - i, locationId: t.loc.id, path: t.rel, createdAt: Date.now() }));
    const w = this.wanted([...current, ...extra]);
    const bytes = [...w.hashes.values()].reduce((s, n) => s + n, 0);
    const max = this.home.config['cache.pinnedMax'];
    if (bytes > max) {
      throw new FsError(
        'ENOSPC',
        `pinning needs ${bytes} bytes with the pins you have, more than cache.pinnedMax (${max} bytes); nothing was pinned. Unpin something or raise it: vdfs config set cache.pinnedMax SIZE`,
      );
    }
    let added = 0;
    this.home.db
      .transaction(() => {
        for (const t of targets) if (this.store.add(t.loc.id, t.rel)) added++;
      })
      .immediate();
    return { added, bytes };
  }

  /** Removes pins and the content no remaining pin wants. True per target that was pinned. */
  async remove(targets: { loc: Location; rel: string }[]): Promise<boolean[]> {
    const out = targets.map((t) => this.store.remove(t.loc.id, t.rel));
    await this.dropUnwanted();
    return out;
  }

  report(): PinsReport {
    const pins = this.store.list();
    const w = this.wanted(pins);
    const fits = this.withinLimit(w);
    const here = this.area.list();
    const states = pins.map((p): PinState => {
      const files = w.byPin.get(p.id);
      const loc = this.home.locations.byId(p.locationId);
      const s: PinState = {
        path: virtualPath(loc?.name ?? '?', p.path),
        state: 'fetched',
        files: 0,
        bytes: 0,
        fetchedFiles: 0,
        fetchedBytes: 0,
        unhashed: 0,
        createdAt: new Date(p.createdAt).toISOString(),
      };
      if (!files) return { ...s, state: 'missing' };
      let overLimit = false;
      for (const f of files) {
        s.files++;
        s.bytes += f.size;
        if (f.size === 0 || (f.hash && here.get(f.hash) === f.size)) {
          s.fetchedFiles++;
          s.fetchedBytes += f.size;
          continue;
        }
        if (!f.hash) s.unhashed++;
        else if (!fits.has(f.hash)) overLimit = true;
      }
      s.state = overLimit ? 'over-limit' : s.fetchedFiles + s.unhashed < s.files ? 'fetching' : 'fetched';
      return s;
    });
    let fetchedBytes = 0;
    for (const [h, size] of w.hashes) if (here.get(h) === size) fetchedBytes += size;
    return { maxBytes: this.home.config['cache.pinnedMax'], bytes: [...w.hashes.values()].reduce((a, b) => a + b, 0), fetchedBytes, pins: states };
  }

  /** Removes pinned content no pin wants. Never throws. */
  async dropUnwanted(): Promise<void> {
    const w = this.wanted();
    for (const h of this.area.list().keys()) if (!w.hashes.has(h)) await this.area.remove(h);
  }

  /**
   * Fetches every wanted content that fits and is not here yet, verified block by block from
   * the best replica that has it. Returns what could not be fetched (content hash prefix and
   * why). Never throws.
   */
  async sync(progress?: (doneBytes: number, totalBytes: number) => void): Promise<{ fetched: number; failed: string[] }> {
    const w = this.wanted();
    const fits = this.withinLimit(w);
    const todo = [...fits].filter((h) => !this.area.has(h, w.hashes.get(h)));
    const total = todo.reduce((s, h) => s + w.hashes.get(h)!, 0);
    let done = 0;
    let fetched = 0;
    const failed: string[] = [];
    progress?.(0, total);
    for (const h of todo) {
      try {
        await this.fetch(h, (n) => {
          done += n;
          progress?.(done, total);
        });
        fetched++;
      } catch (err) {
        failed.push(`${h.slice(0, 16)}: ${(err as Error).message}`);
        this.log?.warn({ hash: h, err: (err as Error).message }, 'pinned content could not be fetched (will retry)');
      }
    }
    await this.dropUnwanted();
    return { fetched, failed };
  }

  private async fetch(hash: string, onBytes: (n: number) => void): Promise<void> {
    const blob = this.home.blobs.get(hash);
    if (!blob) throw new FsError('ENOENT', `content ${hash.slice(0, 16)} is not known to the index`);
    await this.area.store(hash, (write) =>
      fetchVerified(
        blob,
        () => this.replicas.locationSources(hash),
        async (_i, b) => {
          await write(b);
          onBytes(b.length);
        },
      ),
    );
  }

  /**
   * Keeps pins fetched in the background (the daemon's job): a sync every `intervalMs` when
   * `indexChanges` (Resolver.changes: moves with every index change, a file added to a pinned
   * folder or its hash) or the pins moved.
   */
  start(indexChanges: () => number, intervalMs = 2000): void {
    let seen = '';
    let retryAt = 0;
    const tick = () => {
      if (this.running) return;
      // A pass only when the index or the pins changed, or to retry what failed (every 30 s).
      // The change log alone missed a hash committed after a pass: it is written only for
      // locations shared with a peer (a file added to a pinned folder was never fetched).
      const sig = `${this.store.signature()}:${indexChanges()}`;
      if (sig === seen && (retryAt === 0 || Date.now() < retryAt)) return;
      this.running = this.sync()
        .then((r) => {
          seen = sig;
          retryAt = r.failed.length > 0 ? Date.now() + 30_000 : 0;
          if (r.fetched > 0) this.log?.info({ fetched: r.fetched }, 'pinned content fetched');
        })
        // Not marked as seen: the next tick tries again.
        .catch((err) => noteSwallowed(this.log, 'pins: fetching pinned content', err))
        .finally(() => {
          this.running = undefined;
        });
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** The `user.vdfs.pinned` value for an entry: the covering pin and whether its content is here; undefined when not pinned. */
  xattr(loc: Location, rel: string, entry: Entry): string | undefined {
    const pin = this.store.list().find((p) => p.locationId === loc.id && (p.path === '' || rel === p.path || rel.startsWith(p.path + '/')));
    if (!pin) return undefined;
    const state = entry.type !== 'file' ? 'pinned' : entry.size === 0 || (entry.hash && this.area.has(entry.hash, entry.size)) ? 'fetched' : entry.hash ? 'fetching' : 'unhashed';
    return JSON.stringify({ pin: virtualPath(loc.name, pin.path), state });
  }
}
