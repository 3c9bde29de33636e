import type { ChangesPage, PairAnswer, SharedLocation, SnapshotHeader, SnapshotLine } from '../../core/peer-protocol';

/**
 * What the peer server answers from, given to it by the wiring (`app/peer/peer-daemon.ts`
 * builds these over the index): the server itself holds no store and speaks no SQL.
 */

/** The paired nodes, as far as connections are concerned. */
export interface PeerDirectory {
  /** Fingerprints of every paired node now (another process may have paired or revoked one). Throws on a failed index read. */
  pairedIds(): string[];
  /** Records that `id` was heard from (shown by `vdfs peer ls`). Throws on a failed index write. */
  touch(id: string): void;
}

/** The inviter's side of pairing. */
export interface PairingService {
  /**
   * Uses up the token in `body`, records the node whose certificate has fingerprint `clientFp`
   * and applies both sides' shares. Throws FsError EACCES (bad token), EINVAL (malformed body).
   */
  accept(clientFp: string, body: unknown, source: string): PairAnswer;
}

/** A snapshot being sent: its header, its lines (read lazily), and the read connection to close. */
export interface SnapshotStream {
  header: SnapshotHeader;
  lines: Generator<SnapshotLine>;
  close(): void;
}

/** Where a blob's bytes are: a file beneath a location root, as indexed. */
export interface BlobFile {
  root: string;
  rel: string;
  size: number;
  /** The indexed file version (`core/local-stat localVersion`): the file is served only while it still matches. */
  version: string | null;
}

/** The shared locations' trees, change logs and blobs, as seen by one peer. */
export interface ServeSource {
  /** The latest change sequence number (all locations). Throws on a failed index read. */
  headSeq(): number;
  /** The locations shared with `peerId`. */
  locations(peerId: string): SharedLocation[];
  /** The whole tree of a shared location at one instant. Throws FsError ENOENT (not shared). The caller must close() it. */
  snapshot(peerId: string, name: string): SnapshotStream;
  /** Changes of a shared location after `since`, at most `limit`. Throws FsError ENOENT (not shared). */
  changes(peerId: string, name: string, since: number, limit: number): ChangesPage;
  /** A file holding `hash` in a location shared with `peerId`. Throws FsError ENOENT (unknown or unshared: the same answer). */
  blobFile(peerId: string, hash: string): BlobFile;
}
