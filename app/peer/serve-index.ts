import { isSpecial } from '../../core/provider';
import type { Db } from '../../index/db';
import { FsError } from '../../core/fs-error';
import type { ChangesPage, SharedLocation, SnapshotLine, WireBlob, WireChange, WireEntry } from '../../core/peer-protocol';
import { PeerStore } from '../../index/peer-store';
import { ServeQueries, type OwnLocationRow, type TreeRow } from '../../index/serve-queries';
import { HiddenRels, isHiddenRel } from '../../index/state-paths';
import type { BlobFile, ServeSource, SnapshotStream } from '../../mount/peer-server/peer-sources';

/** A change page stops growing past this many bytes (readers refuse pages over PEER_MAX_PAGE_BYTES). */
const PAGE_BYTES = 8 * 1024 * 1024;

export function epochOf(l: { id: number; created_at: number }): string {
  return `${l.id}.${l.created_at}`;
}

function* linesOf(rows: Iterable<TreeRow>): Generator<SnapshotLine> {
  for (const r of rows) {
    // Special files (FIFOs, sockets, devices) mean something only on this machine: never sent (docs/vfs.md).
    if (isSpecial(r.type)) continue;
    const line: SnapshotLine = {
      path: r.path,
      entry: { type: r.type, size: r.size, mtimeSec: r.mtime_sec, mtimeNsec: r.mtime_nsec, mode: r.mode, version: r.version, hash: r.hash, target: r.target },
    };
    const b = wireBlob(r);
    if (b) line.blob = b;
    yield line;
  }
}

function wireBlob(r: { size: number; block_size: number | null; block_hashes: Buffer | null }): WireBlob | undefined {
  return r.block_size && r.block_hashes ? { size: r.size, blockSize: r.block_size, blockHashes: r.block_hashes.toString('base64') } : undefined;
}

/**
 * What this node answers other nodes, read from its index: shared locations, snapshots, the
 * change feed and where a blob lives. Only locations this node owns and shares with the asking
 * peer are ever visible. Methods throw FsError ENOENT (not shared / unknown) or EINVAL.
 */
export class ServeIndex implements ServeSource {
  private readonly peers: PeerStore;
  private readonly q: ServeQueries;
  private readonly hidden: HiddenRels;

  constructor(db: Db, statePaths: readonly string[] = []) {
    this.peers = new PeerStore(db);
    this.q = new ServeQueries(db);
    this.hidden = new HiddenRels(statePaths);
  }

  headSeq(): number {
    return this.q.headSeq();
  }

  private sharedRows(peerId: string): OwnLocationRow[] {
    return this.q.ownLocalLocations(this.peers.sharesOf(peerId));
  }

  locations(peerId: string): SharedLocation[] {
    const seq = this.headSeq();
    return this.sharedRows(peerId).map((l) => ({ name: l.name, epoch: epochOf(l), seq }));
  }

  /** Throws ENOENT when the location is not shared with this peer (same answer as "does not exist": nothing leaks). */
  shared(peerId: string, name: string): OwnLocationRow {
    const l = this.sharedRows(peerId).find((r) => r.name === name);
    if (!l) throw new FsError('ENOENT', `no shared location ${JSON.stringify(name)}`);
    return l;
  }

  /**
   * The whole tree of a shared location at one instant, parents before children, with the
   * change seq it reflects; streamed (see `ServeQueries.openTree`): the owner never holds the
   * tree. The caller must `close()` it (also when the peer goes away mid-way).
   */
  snapshot(peerId: string, name: string): SnapshotStream {
    const l = this.shared(peerId, name);
    const hidden = this.hidden.of(l.uri);
    const t = this.q.openTree(l.id, (path) => hidden.length > 0 && isHiddenRel(path, hidden));
    return { header: { location: l.name, epoch: epochOf(l), seq: t.seq }, lines: linesOf(t.rows), close: t.close };
  }

  /** Changes of a shared location after `since`, in order, at most `limit`. */
  changes(peerId: string, name: string, since: number, limit: number): ChangesPage {
    const l = this.shared(peerId, name);
    return this.q.durableSnapshot(() => {
      const head = this.headSeq();
      const rows = this.q.changesAfter(l.id, since, limit);
      const hidden = this.hidden.of(l.uri);
      // Pages are bounded in bytes too (block lists of huge files are big), so a reader can
      // refuse oversized answers: at least one change, then stop past PAGE_BYTES. Changes under
      // vdfs state folders are skipped but still move the page forward (`last`).
      const changes: WireChange[] = [];
      let bytes = 0;
      let last = since;
      let consumed = 0;
      for (const r of rows) {
        if (changes.length > 0 && bytes > PAGE_BYTES) break;
        consumed++;
        last = r.seq;
        if (isHiddenRel(r.path, hidden) || (r.to_path !== null && isHiddenRel(r.to_path, hidden))) continue;
        const c: WireChange = { seq: r.seq, op: r.op, path: r.path, toPath: r.to_path, entry: r.entry ? (JSON.parse(r.entry) as WireEntry) : null };
        const b = wireBlob(r);
        if (b) c.blob = b;
        bytes += (r.entry?.length ?? 0) + r.path.length + (r.to_path?.length ?? 0) + (b?.blockHashes.length ?? 0) + 100;
        changes.push(c);
      }
      const more = rows.length === limit || consumed < rows.length;
      return { epoch: epochOf(l), changes, next: more ? last : Math.max(head, since), more };
    });
  }

  /**
   * Where to read a blob for this peer: a file with that hash in a location shared with it.
   * Throws ENOENT otherwise (an unknown hash and an unshared one look the same).
   */
  blobFile(peerId: string, hash: string): BlobFile {
    const locs = this.sharedRows(peerId);
    if (locs.length === 0) throw new FsError('ENOENT', 'no such blob');
    for (const e of this.q.holders(
      hash,
      locs.map((l) => l.id),
      16,
    )) {
      const root = locs.find((l) => l.id === e.loc)!.uri;
      const rel = this.q.relPathOf(e.id);
      if (!this.hidden.hides(root, rel)) return { root, rel, size: e.size, version: e.version };
    }
    throw new FsError('ENOENT', 'no such blob');
  }
}
