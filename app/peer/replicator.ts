import type { Logger } from 'pino';
import type { BlobStore } from '../../index/blobs';
import type { Db } from '../../index/db';
import type { LocationStore, Location } from '../../index/locations';
import { ReplicaIndex, type PeerLocationOptions } from '../../index/replicate';
import type { NodeKeys } from '../../core/node-identity';
import { FsError } from '../../core/fs-error';
import { errorOf, PeerClient } from '../../providers/peer/peer-client';
import { parsePeerUri } from '../../providers/peer/peer-provider';
import { PeerStore, type PeerNode } from '../../index/peer-store';
import type { ChangesPage, SharedLocation, SnapshotHeader, SnapshotLine } from '../../core/peer-protocol';

/** The parts of a home replication needs. */
export interface ReplicationHome {
  db: Db;
  locations: LocationStore;
  blobs: BlobStore;
}

/** A client for a paired node's first address. Throws EHOSTDOWN when it has none. */
export function clientFor(node: PeerNode, keys: NodeKeys): PeerClient {
  const url = node.addresses[0];
  if (!url) throw new FsError('EHOSTDOWN', `no known address for peer ${node.name}`);
  return new PeerClient(url, node.id, keys);
}

/** A snapshot is one string in the end: V8's limit (~512 MiB) bounds it; say so clearly instead. */
export const MAX_SNAPSHOT_BYTES = 500 * 1024 * 1024;

/** Fetches a consistent snapshot of a shared location. Throws what the client throws, EIO for a malformed answer. */
export async function fetchSnapshot(client: PeerClient, name: string): Promise<{ header: SnapshotHeader; lines: SnapshotLine[] }> {
  const res = await client.request(`/v1/snapshot?location=${encodeURIComponent(name)}`, { idleMs: 30_000, maxBytes: MAX_SNAPSHOT_BYTES });
  if (res.status !== 200) throw errorOf(res, `${client.url} snapshot of ${name}`);
  const text = res.body.toString('utf8');
  const rows = text.split('\n');
  if (rows.at(-1) === '') rows.pop();
  try {
    const header = JSON.parse(rows[0]) as SnapshotHeader;
    const lines = rows.slice(1).map((r) => JSON.parse(r) as SnapshotLine);
    if (typeof header.seq !== 'number' || typeof header.epoch !== 'string' || header.count !== lines.length) throw new Error('truncated');
    return { header, lines };
  } catch (err) {
    throw new FsError('EIO', `${client.url}: malformed snapshot of ${name}: ${(err as Error).message}`);
  }
}

/**
 * `vdfs location add NAME peer://PEER/LOCATION`: checks the peer shares that location with us,
 * adds it (kind peer, owned by the peer, read-only) and backfills its tree from a snapshot, so
 * it is browsable at once; a running daemon then follows the live feed.
 * Throws ENOENT (unknown peer or unshared location), EHOSTDOWN (peer unreachable), EEXIST.
 */
export async function addPeerLocation(home: ReplicationHome, keys: NodeKeys, name: string, uri: string): Promise<{ location: Location; entries: number }> {
  const { peer: ref, location: remote } = parsePeerUri(uri);
  const node = new PeerStore(home.db).find(ref);
  const client = clientFor(node, keys);
  try {
    const shared = await client.json<SharedLocation[]>('/v1/locations');
    if (!shared.some((s) => s.name === remote)) throw new FsError('ENOENT', `peer ${node.name} does not share a location named ${JSON.stringify(remote)} with this node (it shares: ${shared.map((s) => s.name).join(', ') || 'nothing'})`);
    const snap = await fetchSnapshot(client, remote);
    const options: { peer: PeerLocationOptions } = { peer: { location: remote } };
    const loc = home.db.transaction(() =>
      home.locations.add({ name, uri: `peer://${node.name}/${remote}`, kind: 'peer', ownerNode: node.id, readonly: true, options: options as never }),
    ).immediate();
    try {
      new ReplicaIndex(home.db, home.blobs).applySnapshot(loc.id, snap.header, snap.lines);
    } catch (err) {
      home.locations.remove(loc.name);
      throw err;
    }
    home.locations.setLastScan(loc.id, Date.now());
    return { location: home.locations.byId(loc.id)!, entries: snap.lines.length };
  } finally {
    client.close();
  }
}

/**
 * Keeps every peer location of this index in line with its owner: a snapshot when there is no
 * usable starting point (new, or the owner's epoch changed), then the change feed from
 * `remote_seq` with long-polls, so a change shows here within about a second. A failure marks
 * the location offline (its tree stays browsable) and retries with backoff up to 10 s;
 * locations added or removed by the CLI are picked up within 2 s.
 */
export class PeerReplication {
  private readonly running = new Map<number, AbortController>();
  private timer?: NodeJS.Timeout;
  private readonly replica: ReplicaIndex;
  private stopped = false;

  constructor(private readonly home: ReplicationHome, private readonly keys: NodeKeys, private readonly log: Logger, private readonly changed: () => void) {
    this.replica = new ReplicaIndex(home.db, home.blobs);
  }

  start(): void {
    this.reconcile();
    this.timer = setInterval(() => this.reconcile(), 2000);
    this.timer.unref();
  }

  private reconcile(): void {
    if (this.stopped) return;
    let locs: Location[];
    try {
      locs = this.home.locations.list().filter((l) => l.kind === 'peer');
    } catch {
      return;
    }
    const ids = new Set(locs.map((l) => l.id));
    for (const [id, ac] of this.running) if (!ids.has(id)) { ac.abort(); this.running.delete(id); }
    for (const l of locs) {
      if (this.running.has(l.id)) continue;
      const ac = new AbortController();
      this.running.set(l.id, ac);
      void this.follow(l, ac.signal).finally(() => { if (this.running.get(l.id) === ac) this.running.delete(l.id); });
    }
  }

  private setOnline(loc: Location, online: boolean): void {
    try {
      if (this.home.locations.byId(loc.id)?.online !== online) {
        this.home.locations.setOnline(loc.id, online);
        this.changed();
      }
    } catch { /* busy: next time */ }
  }

  private async follow(loc: Location, signal: AbortSignal): Promise<void> {
    let backoff = 500;
    let client: PeerClient | undefined;
    while (!signal.aborted && !this.stopped) {
      try {
        const node = new PeerStore(this.home.db).byId(loc.ownerNode);
        if (!node) throw new FsError('EACCES', `the owner of ${loc.name} is not paired any more`);
        client?.close();
        client = clientFor(node, this.keys);
        const { seq, options } = this.replica.state(loc.id);
        const remote = options.location || parsePeerUri(loc.uri).location;
        let since = seq;
        if (since === 0 || !options.epoch) since = await this.resync(client, loc, remote);
        for (;;) {
          if (signal.aborted || this.stopped) return;
          const page = await client.json<ChangesPage>(`/v1/changes?location=${encodeURIComponent(remote)}&since=${since}&limit=2000&wait=20`, { idleMs: 30_000, signal });
          if (page.epoch !== this.replica.state(loc.id).options.epoch) {
            since = await this.resync(client, loc, remote);
            continue;
          }
          this.setOnline(loc, true);
          backoff = 500;
          if (page.changes.length > 0 || page.next !== since) {
            this.replica.applyChanges(loc.id, page);
            if (page.changes.length > 0) this.changed();
          }
          since = page.next;
        }
      } catch (err) {
        if (signal.aborted || this.stopped) break;
        this.setOnline(loc, false);
        this.log.warn({ location: loc.name, err: (err as Error).message }, 'peer replication: will retry');
        await new Promise((r) => setTimeout(r, backoff).unref());
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
    client?.close();
  }

  private async resync(client: PeerClient, loc: Location, remote: string): Promise<number> {
    const snap = await fetchSnapshot(client, remote);
    this.replica.applySnapshot(loc.id, snap.header, snap.lines);
    this.changed();
    this.log.info({ location: loc.name, entries: snap.lines.length, seq: snap.header.seq }, 'peer replication: snapshot applied');
    return snap.header.seq;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const ac of this.running.values()) ac.abort();
    this.running.clear();
  }
}
