import type { Location } from '../../index/locations';
import { VerifiedStore } from '../../index/verified';
import { NodeStore } from '../../index/nodes';
import type { PinnedArea } from '../../cache/pinned-area';
import type { Provider } from '../../core/provider';
import type { VfsHome } from './vfs-home';
import type { ReplicaSource } from './blob-reader';
import { virtualPath } from './namespace';

/**
 * Opens the provider of a location (app/provider-registry.ts `providerOpener` is one: the VFS
 * never names a concrete provider). Throws ENOTSUP for a kind this build cannot open.
 */
export type OpenProvider = (loc: Location) => Provider;

/** One provider instance per location, opened on first use. */
export class ProviderPool {
  private readonly providers = new Map<number, Provider>();

  constructor(private readonly open: OpenProvider) {}

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

/** Cheapest first: a local disk, then (later) LAN peers, then cloud. */
const KIND_RANK: Record<string, number> = { local: 0, peer: 1, s3: 2, gdrive: 3 };

/** Finds every place a blob can be read from. */
export class Replicas {
  private readonly verified: VerifiedStore;

  /** `pinned`: the pinned area of the cache, read before any location when it holds the blob. */
  constructor(private readonly home: VfsHome, private readonly providers: ProviderPool, private readonly pinned?: PinnedArea) {
    this.verified = new VerifiedStore(home.db);
  }

  private entriesOf(hash: string): { loc: Location; rel: string; version: string | null; size: number; id: number }[] {
    const locs = new Map(this.home.locations.list().map((l) => [l.id, l]));
    return this.home.entries
      .byHash(hash)
      .filter((e) => e.type === 'file' && locs.has(e.locationId))
      .map((e) => ({ loc: locs.get(e.locationId)!, rel: this.home.entries.pathOf(e.id), version: e.version, size: e.size, id: e.id }))
      // An entry left in the index under a vdfs state folder (until the next scan removes it)
      // is no replica: /.vdfs/by-hash must not read the home through it.
      .filter((r) => !this.home.hidden.hides(r.loc.uri, r.rel))
      .sort((a, b) => (KIND_RANK[a.loc.kind] ?? 9) - (KIND_RANK[b.loc.kind] ?? 9) || Number(b.loc.online) - Number(a.loc.online));
  }

  /** Readers for each replica, best first. Each read checks the replica still has the indexed version. */
  sources(hash: string): ReplicaSource[] {
    const pinned: ReplicaSource[] = this.pinned?.has(hash) ? [{ label: 'pinned area', read: (offset, length) => this.pinned!.read(hash, offset, length) }] : [];
    return [...pinned, ...this.locationSources(hash)];
  }

  /** Readers for the replicas in locations only (what the pinner fetches from), best first. */
  locationSources(hash: string): ReplicaSource[] {
    return this.entriesOf(hash).map(({ loc, rel, version, size }) => ({
      label: virtualPath(loc.name, rel),
      locationId: loc.id,
      size,
      read: (offset: number, length: number) => this.providers.get(loc).readRange(rel, offset, length, { version: version ?? undefined }),
    }));
  }

  list(hash: string): ReplicaInfo[] {
    const nodes = new NodeStore(this.home.db).names();
    const now = new Date().toISOString();
    return this.entriesOf(hash).map(({ loc, rel, id }) => {
      const v = this.verified.get(id, hash);
      return {
        location: loc.name, path: virtualPath(loc.name, rel), node: nodes.get(loc.ownerNode) ?? loc.ownerNode, online: loc.online,
        lastSeen: loc.online ? now : loc.lastSeen !== null ? new Date(loc.lastSeen).toISOString() : null,
        lastVerified: v?.ok ? new Date(v.at).toISOString() : null,
      };
    });
  }
}
