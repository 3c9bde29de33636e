import type { Location } from '../../index/locations';
import { VerifiedStore } from '../../index/verified';
import { NodeStore } from '../../index/nodes';
import type { PinnedArea } from '../../cache/pinned-area';
import type { Provider } from '../../core/provider';
import type { VfsHome } from './vfs-home';
import type { Readable } from 'node:stream';
import type { ReplicaSource } from './blob-reader';
import { virtualPath } from './namespace';

/**
 * Opens the provider of a location (app/provider-registry.ts `providerOpener` is one: the VFS
 * never names a concrete provider or a kind). Throws ENOTSUP for a kind this build cannot open.
 */
export interface OpenProvider {
  (loc: Location): Provider;
  /**
   * Where reading this location stands before anything is measured, cheapest first, without
   * opening it: LOCAL_DISK_RANK for files on this machine (never outranked by a measurement),
   * then LAN peers, then cloud stores. Never throws.
   */
  readRank(loc: Location): number;
}

/** The read rank of files on this machine's own disks: always read first. */
export const LOCAL_DISK_RANK = 0;

/** One provider instance per location, opened on first use. */
export class ProviderPool {
  private readonly providers = new Map<number, Provider>();

  constructor(private readonly open: OpenProvider) {}

  /** OpenProvider.readRank, for the replicas of a blob. Never throws. */
  readRank(loc: Location): number {
    return this.open.readRank(loc);
  }

  /** Throws what the opener throws (ENOTSUP for a location kind this build cannot open). */
  get(loc: Location): Provider {
    let p = this.providers.get(loc.id);
    if (!p) {
      p = this.open(loc);
      this.providers.set(loc.id, p);
    }
    return p;
  }

  async close(): Promise<void> {
    await Promise.all([...this.providers.values()].map((p) => p.close().catch(() => undefined)));
    this.providers.clear();
  }
}

/** One replica as `vdfs whereis`/`stat` and the `user.vdfs.replicas` xattr show it. */
export interface ReplicaInfo {
  location: string;
  path: string;
  node: string;
  online: boolean;
  /** ISO time the location was last reachable (now when online); null when never recorded. */
  lastSeen: string | null;
  /** ISO time `vdfs fsck` last read this replica back and found its content intact; null: never. */
  lastVerified: string | null;
}

/**
 * Measured cost of reading from each location: moving averages of the time to the answer and
 * of throughput, from the reads themselves. Replicas are ranked by the expected time of a
 * 1 MiB read (latency + 1 MiB / throughput). A location not measured yet is ranked by its
 * read rank (OpenProvider.readRank), but ahead of measured ones of its own rank, so that it gets
 * measured. Never throws.
 */
/** 100 MB/s, until a location's throughput is measured. */
const ASSUMED_BYTES_PER_MS = 100_000;

export class ReplicaStats {
  private readonly m = new Map<number, { latencyMs?: number; bytesPerMs?: number }>();

  /** One read of `bytes` that took `ms` in all (0 bytes: the time to a stream's answer). */
  record(locationId: number, bytes: number, ms: number): void {
    const cur = this.m.get(locationId) ?? {};
    const ewma = (old: number | undefined, v: number) => (old === undefined ? v : 0.7 * old + 0.3 * v);
    if (bytes <= 64 * 1024) cur.latencyMs = ewma(cur.latencyMs, ms);
    else cur.bytesPerMs = ewma(cur.bytesPerMs, bytes / Math.max(ms, 0.05));
    this.m.set(locationId, cur);
  }

  /**
   * Expected ms for a 1 MiB read; undefined when never measured. Throughput not measured yet
   * counts as ASSUMED_BYTES_PER_MS; latency not measured yet as 0 (a throughput sample
   * includes its request's latency).
   */
  cost(locationId: number): number | undefined {
    const s = this.m.get(locationId);
    if (!s) return undefined;
    return (s.latencyMs ?? 0) + (1024 * 1024) / Math.max(s.bytesPerMs ?? ASSUMED_BYTES_PER_MS, 1e-3);
  }
}

/** The process's measurements (shared by every reader). */
export const replicaStats = new ReplicaStats();

function rank(pool: ProviderPool, a: { loc: Location }, b: { loc: Location }): number {
  const online = Number(b.loc.online) - Number(a.loc.online);
  if (online !== 0) return online;
  const [ka, kb] = [pool.readRank(a.loc), pool.readRank(b.loc)];
  if (ka === LOCAL_DISK_RANK || kb === LOCAL_DISK_RANK) return ka - kb;
  const [ca, cb] = [replicaStats.cost(a.loc.id), replicaStats.cost(b.loc.id)];
  if (ca !== undefined && cb !== undefined) return ca - cb;
  // One measured, one not, same kind: the unmeasured one is tried (a few reads measure it).
  if (ka === kb && (ca === undefined) !== (cb === undefined)) return ca === undefined ? -1 : 1;
  return ka - kb;
}

async function timed<T extends Buffer | Readable>(locationId: number, run: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await run();
  // A stream counts for its time to the answer (its consumer stops it at the window's end).
  replicaStats.record(locationId, Buffer.isBuffer(r) ? r.length : 0, performance.now() - t0);
  return r;
}

/** Finds every place a blob can be read from. */
export class Replicas {
  private readonly verified: VerifiedStore;

  /** `pinned`: the pinned area of the cache, read before any location when it holds the blob. */
  constructor(
    private readonly home: VfsHome,
    private readonly providers: ProviderPool,
    private readonly pinned?: PinnedArea,
  ) {
    this.verified = new VerifiedStore(home.db);
  }

  private entriesOf(hash: string): { loc: Location; rel: string; version: string | null; size: number; id: number }[] {
    const locs = new Map(this.home.locations.list().map((l) => [l.id, l]));
    return (
      this.home.entries
        .byHash(hash)
        .filter((e) => e.type === 'file' && locs.has(e.locationId))
        .map((e) => ({ loc: locs.get(e.locationId)!, rel: this.home.entries.pathOf(e.id), version: e.version, size: e.size, id: e.id }))
        // An entry left in the index under a vdfs state folder (until the next scan removes it)
        // is no replica: /.vdfs/by-hash must not read the home through it.
        .filter((r) => !this.home.hidden.hides(r.loc.uri, r.rel))
        .sort((a, b) => rank(this.providers, a, b))
    );
  }

  /** Readers for each replica, best first. Each read checks the replica still has the indexed version. */
  sources(hash: string): ReplicaSource[] {
    const pinned: ReplicaSource[] = this.pinned?.has(hash) ? [{ label: 'pinned area', read: (offset, length) => this.pinned!.read(hash, offset, length) }] : [];
    return [...pinned, ...this.locationSources(hash)];
  }

  /** Readers for the replicas in locations only (what the pinner fetches from), best first. */
  locationSources(hash: string): ReplicaSource[] {
    return this.entriesOf(hash).map(({ loc, rel, version, size }) => {
      const opts = { version: version ?? undefined };
      const provider = () => this.providers.get(loc);
      let canStream = false;
      let versionedReads = false;
      try {
        canStream = provider().readRangeStream !== undefined;
        versionedReads = provider().features.versionedReads === true;
      } catch {
        // a kind this build cannot open: its reads say so
      }
      return {
        label: virtualPath(loc.name, rel),
        locationId: loc.id,
        size,
        versionChecked: versionedReads && version !== null,
        read: (offset: number, length: number) => timed(loc.id, () => provider().readRange(rel, offset, length, opts)),
        stream: canStream ? (offset: number, length: number) => timed(loc.id, () => provider().readRangeStream!(rel, offset, length, opts)) : undefined,
      };
    });
  }

  list(hash: string): ReplicaInfo[] {
    const nodes = new NodeStore(this.home.db).names();
    const now = new Date().toISOString();
    return this.entriesOf(hash).map(({ loc, rel, id }) => {
      const v = this.verified.get(id, hash);
      return {
        location: loc.name,
        path: virtualPath(loc.name, rel),
        node: nodes.get(loc.ownerNode) ?? loc.ownerNode,
        online: loc.online,
        lastSeen: loc.online ? now : loc.lastSeen !== null ? new Date(loc.lastSeen).toISOString() : null,
        lastVerified: v?.ok ? new Date(v.at).toISOString() : null,
      };
    });
  }
}
