import type { Location } from '../../index/locations';
import type { Provider } from '../../providers/provider';
import { openProvider, type ProviderContext } from '../../providers/registry';
import type { Home } from '../home';
import type { ReplicaSource } from './blob-reader';
import { virtualPath } from './namespace';

/** One provider instance per location, opened on first use. */
export class ProviderPool {
  private readonly providers = new Map<number, Provider>();

  /** Throws ENOTSUP for a location kind this build cannot open. `ctx` is used on first open (peer locations need it). */
  get(loc: Location, ctx?: ProviderContext): Provider {
    let p = this.providers.get(loc.id);
    if (!p) {
      p = openProvider(loc, ctx);
      this.providers.set(loc.id, p);
    }
    return p;
  }

  async close(): Promise<void> {
    await Promise.all([...this.providers.values()].map((p) => p.close().catch(() => undefined)));
    this.providers.clear();
  }
}

export interface ReplicaInfo {
  location: string;
  path: string;
  node: string;
  online: boolean;
}

/** Cheapest first: a local disk, then (later) LAN peers, then cloud. */
const KIND_RANK: Record<string, number> = { local: 0, peer: 1, s3: 2, gdrive: 3 };

/** Finds every place a blob can be read from. */
export class Replicas {
  constructor(private readonly home: Home, private readonly providers: ProviderPool) {}

  private entriesOf(hash: string): { loc: Location; rel: string; version: string | null; size: number }[] {
    const locs = new Map(this.home.locations.list().map((l) => [l.id, l]));
    return this.home.entries
      .byHash(hash)
      .filter((e) => e.type === 'file' && locs.has(e.locationId))
      .map((e) => ({ loc: locs.get(e.locationId)!, rel: this.home.entries.pathOf(e.id), version: e.version, size: e.size }))
      // An entry left in the index under a vdfs state folder (until the next scan removes it)
      // is no replica: /.vdfs/by-hash must not read the home through it.
      .filter((r) => r.loc.kind !== 'local' || !this.home.hidden.hides(r.loc.uri, r.rel))
      .sort((a, b) => (KIND_RANK[a.loc.kind] ?? 9) - (KIND_RANK[b.loc.kind] ?? 9) || Number(b.loc.online) - Number(a.loc.online));
  }

  /** Readers for each replica, best first. Each read checks the replica still has the indexed version. */
  sources(hash: string): ReplicaSource[] {
    return this.entriesOf(hash).map(({ loc, rel, version, size }) => ({
      label: virtualPath(loc.name, rel),
      locationId: loc.id,
      size,
      read: (offset: number, length: number) => this.providers.get(loc, { homeDir: this.home.dir, db: this.home.db }).readRange(rel, offset, length, { version: version ?? undefined }),
    }));
  }

  list(hash: string): ReplicaInfo[] {
    const nodes = new Map((this.home.db.prepare('SELECT id, name FROM nodes').all() as { id: string; name: string }[]).map((n) => [n.id, n.name]));
    return this.entriesOf(hash).map(({ loc, rel }) => ({ location: loc.name, path: virtualPath(loc.name, rel), node: nodes.get(loc.ownerNode) ?? loc.ownerNode, online: loc.online }));
  }
}
