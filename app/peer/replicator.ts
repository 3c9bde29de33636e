import type { Logger } from 'pino';
import type { BlobStore } from '../../index/blobs';
import type { Db } from '../../index/db';
import type { LocationStore, Location } from '../../index/locations';
import { ReplicaIndex, type PeerLocationOptions, type SnapshotWriter } from '../../index/replicate';
import type { NodeKeys } from '../../core/node-identity';
import { FsError } from '../../core/fs-error';
import { noteSwallowed } from '../../core/swallowed';
import { errorOf, PeerClient } from '../../providers/peer/peer-client';
import { parsePeerUri } from '../../providers/peer/peer-provider';
import { PeerStore, type PeerNode } from '../../index/peer-store';
import { NodeStore } from '../../index/nodes';
import type { ChangesPage, SharedLocation, SnapshotEnd, SnapshotHeader, SnapshotLine } from '../../core/peer-protocol';

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

/** The longest snapshot line accepted (the block list of a huge file is tens of MB). */
const MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * Streams a consistent snapshot of a shared location into a peer location of this index: each
 * line is applied as it arrives, in batches (index/replicate.ts SnapshotWriter), so neither
 * side holds the tree. The location's starting point is recorded only once the end line's
 * count matched. Throws what the client throws, EIO for a malformed or cut-off answer (the
 * location is then left without a starting point: the next attempt starts over), EFBIG for
 * an oversized line.
 */
export async function receiveSnapshot(
  client: PeerClient,
  name: string,
  replica: ReplicaIndex,
  locId: number,
  signal?: AbortSignal,
): Promise<{ header: SnapshotHeader; count: number }> {
  const ac = new AbortController();
  const abort = () => ac.abort();
  signal?.addEventListener('abort', abort);
  const r = new SnapshotReader(replica, locId, () => ac.abort());
  const what = `${client.url} snapshot of ${name}`;
  try {
    const status = await client.stream(`/v1/snapshot?location=${encodeURIComponent(name)}`, (c, st) => r.data(c, st), { idleMs: 30_000, signal: ac.signal });
    if (status !== 200) throw errorOf({ status, headers: {}, body: Buffer.from(r.errorBody) }, what);
  } catch (err) {
    if (r.failure === undefined) throw err;
  } finally {
    signal?.removeEventListener('abort', abort);
    if (!r.ended) r.writer?.abandon();
  }
  if (r.failure !== undefined) {
    if (r.failure instanceof FsError) throw new FsError(r.failure.code, `${what}: ${r.failure.message}`, r.failure);
    if (r.failure instanceof SyntaxError) throw new FsError('EIO', `${what}: malformed line: ${r.failure.message}`);
    throw r.failure;
  }
  if (!r.writer || !r.ended) throw new FsError('EIO', `${what}: cut off (no end line after ${r.writer?.count ?? 0} entries)`);
  return { header: r.writer.header, count: r.writer.count };
}

/** Splits a snapshot answer into lines as chunks arrive and hands them to a SnapshotWriter. */
class SnapshotReader {
  writer: SnapshotWriter | undefined;
  ended = false;
  failure: unknown;
  errorBody = '';
  private partial: Buffer[] = [];
  private partialBytes = 0;

  constructor(
    private readonly replica: ReplicaIndex,
    private readonly locId: number,
    private readonly stop: () => void,
  ) {}

  /** Never throws (it runs in the socket's data event): a failure is kept and the request stopped. */
  data(chunk: Buffer, status: number): void {
    if (this.failure !== undefined) return;
    if (status !== 200) {
      if (this.errorBody.length < 65536) this.errorBody += chunk.toString('utf8');
      return;
    }
    try {
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        const piece = chunk.subarray(start, nl);
        const text = this.partialBytes > 0 ? Buffer.concat([...this.partial, piece]).toString('utf8') : piece.toString('utf8');
        this.partial = [];
        this.partialBytes = 0;
        this.line(text);
        start = nl + 1;
      }
      if (start < chunk.length) {
        this.partial.push(chunk.subarray(start));
        this.partialBytes += chunk.length - start;
        if (this.partialBytes > MAX_LINE_BYTES) throw new FsError('EFBIG', `a line longer than ${MAX_LINE_BYTES} bytes; refused`);
      }
    } catch (err) {
      this.failure = err;
      this.stop();
    }
  }

  private line(text: string): void {
    if (this.ended) throw new FsError('EIO', 'lines after the end line');
    const v = JSON.parse(text) as SnapshotHeader | SnapshotLine | SnapshotEnd;
    if (!this.writer) {
      this.writer = this.replica.beginSnapshot(this.locId, v as SnapshotHeader);
      return;
    }
    if ((v as SnapshotEnd)?.end === true) {
      this.writer.end((v as SnapshotEnd).count);
      this.ended = true;
      return;
    }
    this.writer.add(v as SnapshotLine);
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
    if (!shared.some((s) => s.name === remote))
      throw new FsError(
        'ENOENT',
        `peer ${node.name} does not share a location named ${JSON.stringify(remote)} with this node (it shares: ${shared.map((s) => s.name).join(', ') || 'nothing'})`,
      );
    const options: { peer: PeerLocationOptions } = { peer: { location: remote, receiving: process.pid } };
    const loc = home.db
      .transaction(() => home.locations.add({ name, uri: `peer://${node.name}/${remote}`, kind: 'peer', ownerNode: node.id, readonly: true, options: options as never }))
      .immediate();
    let count: number;
    try {
      ({ count } = await receiveSnapshot(client, remote, new ReplicaIndex(home.db, home.blobs), loc.id));
    } catch (err) {
      home.locations.remove(loc.name);
      throw err;
    }
    home.locations.setLastScan(loc.id, Date.now());
    return { location: home.locations.byId(loc.id)!, entries: count };
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

  constructor(
    private readonly home: ReplicationHome,
    private readonly keys: NodeKeys,
    private readonly log: Logger,
    private readonly changed: () => void,
  ) {
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
      // Every location another node owns is replicated from it (single writer: its owner).
      const self = new NodeStore(this.home.db).selfId();
      locs = this.home.locations.list().filter((l) => l.ownerNode !== self);
    } catch (err) {
      // A busy index: the next round, two seconds later, tries again.
      noteSwallowed(this.log, 'peer replication: listing peer locations', err, {}, 'debug');
      return;
    }
    const ids = new Set(locs.map((l) => l.id));
    for (const [id, ac] of this.running)
      if (!ids.has(id)) {
        ac.abort();
        this.running.delete(id);
      }
    for (const l of locs) {
      if (this.running.has(l.id)) continue;
      const ac = new AbortController();
      this.running.set(l.id, ac);
      void this.follow(l, ac.signal).finally(() => {
        if (this.running.get(l.id) === ac) this.running.delete(l.id);
      });
    }
  }

  private setOnline(loc: Location, online: boolean): void {
    try {
      if (this.home.locations.byId(loc.id)?.online !== online) {
        this.home.locations.setOnline(loc.id, online);
        this.changed();
      }
    } catch (err) {
      // A busy index: the state is set again on the next page or failure.
      noteSwallowed(this.log, 'peer replication: recording online state', err, { location: loc.name }, 'debug');
    }
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
        if (receivingElsewhere(options)) {
          // `vdfs location add` is still streaming the first snapshot: check again in a second.
          await new Promise((r) => setTimeout(r, 1000).unref());
          continue;
        }
        const remote = options.location || parsePeerUri(loc.uri).location;
        let since = seq;
        if (since === 0 || !options.epoch) since = await this.resync(client, loc, remote, signal);
        for (;;) {
          if (signal.aborted || this.stopped) return;
          const page = await client.json<ChangesPage>(`/v1/changes?location=${encodeURIComponent(remote)}&since=${since}&limit=2000&wait=20`, { idleMs: 30_000, signal });
          if (page.epoch !== this.replica.state(loc.id).options.epoch) {
            since = await this.resync(client, loc, remote, signal);
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
        noteSwallowed(this.log, 'peer replication', err, { location: loc.name, retryMs: backoff });
        await new Promise((r) => setTimeout(r, backoff).unref());
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
    client?.close();
  }

  private async resync(client: PeerClient, loc: Location, remote: string, signal: AbortSignal): Promise<number> {
    const snap = await receiveSnapshot(client, remote, this.replica, loc.id, signal);
    this.changed();
    this.log.info({ location: loc.name, entries: snap.count, seq: snap.header.seq }, 'peer replication: snapshot applied');
    return snap.header.seq;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const ac of this.running.values()) ac.abort();
    this.running.clear();
  }
}

/** Another live process is streaming this location's first snapshot. */
function receivingElsewhere(o: PeerLocationOptions): boolean {
  if (o.receiving === undefined || o.receiving === process.pid) return false;
  try {
    process.kill(o.receiving, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}
