/**
 * The peer protocol's JSON shapes (version 1, under `/v1/`). Both sides import these, so a
 * change here is a protocol change: add fields, never change or remove one.
 */
import type { EntryType } from '../../core/provider';

/** `GET /v1/node`. */
export interface NodeInfo {
  id: string;
  name: string;
  protocol: 1;
}

/** One shared location in `GET /v1/locations`. */
export interface SharedLocation {
  name: string;
  /** Changes when the owner removes and re-adds a location of that name: the replica starts over. */
  epoch: string;
  /** The owner's latest change sequence (all locations). */
  seq: number;
}

/** Per-block hashes of a file's content, so the reader can verify every fetched block. */
export interface WireBlob {
  size: number;
  blockSize: number;
  /** 32 bytes per block, base64. */
  blockHashes: string;
}

/** An entry's fields as replicated. */
export interface WireEntry {
  type: EntryType;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  mode: number;
  version: string | null;
  hash: string | null;
  target: string | null;
}

/** One line of `GET /v1/snapshot` after the header: an entry and its path ('' is the root). */
export interface SnapshotLine {
  path: string;
  entry: WireEntry;
  blob?: WireBlob;
}

/**
 * The first line of `GET /v1/snapshot`: everything up to `seq` is in it. The entries follow
 * as they are read (the owner never holds the tree), so their count comes last (SnapshotEnd).
 */
export interface SnapshotHeader {
  location: string;
  epoch: string;
  seq: number;
}

/** The last line of `GET /v1/snapshot`: how many entry lines came before it. Without it the answer was cut off. */
export interface SnapshotEnd {
  end: true;
  count: number;
}

/** One change of `GET /v1/changes`. */
export interface WireChange {
  seq: number;
  op: 'put' | 'delete' | 'move';
  path: string;
  toPath: string | null;
  entry: WireEntry | null;
  blob?: WireBlob;
}

/** `GET /v1/changes?location=L&since=N[&limit=K][&wait=S]`. */
export interface ChangesPage {
  epoch: string;
  changes: WireChange[];
  /** Ask for `since=next` next time (changes of other locations are skipped over too). */
  next: number;
  /** More are waiting right now: ask again without waiting. */
  more: boolean;
}

/** `POST /v1/pair` body, over the ALPN `vdfs-pair/1` connection. */
export interface PairRequest {
  token: string;
  name: string;
  addresses: string[];
  /** What the joining node shares with the inviter. */
  shares: string[];
}

/** `POST /v1/pair` answer. */
export interface PairAnswer {
  id: string;
  name: string;
  /** Locations the inviter shares with the joining node. */
  shares: string[];
}
