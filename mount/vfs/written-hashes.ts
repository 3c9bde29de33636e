import type { FsError } from '../../core/fs-error';
import { noteSwallowed } from '../../core/swallowed';
import type { Location } from '../../index/locations';
import { groupedWrite } from '../../index/commit-group';
import type { FileHash } from '../../index/hash-pool';
import { FileHasher } from '../../index/file-hash';
import { withParent } from '../../core/beneath';
import { virtualPath } from './namespace';
import type { WriterHost } from './writer-host';

/** How long computed hashes wait to be committed together. */
const HASH_COMMIT_MS = 20;

/**
 * Files up to this size are hashed on the event loop when their last writer closes them (a
 * reopen of its descriptor, one read, BLAKE3: ~20 µs), bigger ones in the hash pool: a worker
 * round trip per small file of a `tar x` cost the event loop more than the hash.
 */
const INLINE_HASH_MAX = 64 * 1024;

/** The index version (local-stat's) of the file a hash was read from. */
export function hashedVersion(r: FileHash): string {
  return `${r.ino}:${r.size}:${r.mtimeNs}`;
}

/**
 * How long a file closed through the kernel (FUSE) waits before the hash pool reads it:
 * `rsync -a` closes each file, then sets its times and renames it. Hashed at once, a big file
 * was read twice (the times changed its version during the first read); after this, once, at
 * its final name. Other writers (a WebDAV PUT, whose answer waits for the hash) do not wait.
 */
const REHASH_DELAY_MS = 100;

/**
 * The hashes of files written through the mount: a small one read at its last close from the
 * writer's descriptor, a bigger one in the hash pool a moment later; results committed in
 * groups. Keys are `locId:rel`.
 */
export class WrittenHashes {
  /** Hashes not started yet, and when each is due. */
  private readonly due = new Map<string, { loc: Location; rel: string; at: number }>();
  private dueTimer?: NodeJS.Timeout;
  private readonly rehashing = new Set<string>();
  private readonly rehashAgain = new Set<string>();
  private readonly hashed: { loc: Location; rel: string; r: FileHash }[] = [];
  /** Keys of the hashes in `hashed`, waiting for their grouped commit. */
  private readonly awaitingCommit = new Set<string>();
  private hashedTimer?: NodeJS.Timeout;
  private readonly inlineHasher = new FileHasher();

  constructor(private readonly core: WriterHost) {}

  private get home() {
    return this.core.home;
  }

  /** Whether `key`'s hash is on its way (due, being computed or waiting for its commit). */
  busy(key: string): boolean {
    return this.due.has(key) || this.rehashing.has(key) || this.awaitingCommit.has(key);
  }

  /**
   * Hashes a written file in the hash pool, off the event loop, now or `later` (after
   * REHASH_DELAY_MS). Not while the file is still open for writing (its bytes are not final:
   * closed() asks again); a request made while one is due waits for that one, and one made
   * while one runs runs again after it. Results are committed in groups (see commitHashes).
   */
  rehash(loc: Location, rel: string, later = false): void {
    if (this.core.live.has(virtualPath(loc.name, rel))) return;
    const key = `${loc.id}:${rel}`;
    // A result waiting for its grouped commit: the commit checks it is still for the indexed
    // version, and hashes again when not.
    if (this.awaitingCommit.has(key) || this.due.has(key)) return;
    if (this.rehashing.has(key)) {
      this.rehashAgain.add(key);
      return;
    }
    if (!later) {
      this.start(loc, rel, key);
      return;
    }
    this.due.set(key, { loc, rel, at: Date.now() + REHASH_DELAY_MS });
    this.startDueLater();
  }

  private startDueLater(): void {
    if (this.dueTimer || this.due.size === 0) return;
    let first = Infinity;
    for (const d of this.due.values()) first = Math.min(first, d.at);
    this.dueTimer = setTimeout(() => this.startDue(), Math.max(0, first - Date.now()));
    this.dueTimer.unref();
  }

  private startDue(): void {
    this.dueTimer = undefined;
    const now = Date.now();
    for (const [key, d] of [...this.due]) {
      if (d.at > now) continue;
      this.due.delete(key);
      this.start(d.loc, d.rel, key);
    }
    this.startDueLater();
  }

  private start(loc: Location, rel: string, key: string): void {
    if (this.core.live.has(virtualPath(loc.name, rel))) return; // opened for writing again meanwhile
    this.rehashing.add(key);
    // The worker opens the name (O_NOFOLLOW) inside the parent we hold open: the same fd
    // table, so /proc/self/fd/N/name is valid there, and nothing on the way can be swapped.
    void withParent(loc.uri, rel, (at) => this.core.hashPool.hashFile(at, this.home.config.blockSize))
      .then((r) => {
        if (!r.changed) this.queueHashed(loc, rel, r);
      })
      // Vanished or replaced meanwhile (its own close re-hashes it) is routine; anything else leaves
      // the file without a hash until the next scan, so it is logged and counted.
      .catch((err: FsError) => noteSwallowed(this.core.log, 'local writer: re-hash after close', err, { location: loc.name, path: rel }, err?.code === 'ENOENT' ? 'debug' : 'warn'))
      .finally(() => {
        this.rehashing.delete(key);
        if (this.rehashAgain.delete(key)) this.rehash(loc, rel);
      });
  }

  /**
   * A written file was closed by its last writer, whose descriptor `fd` is still open: a small
   * one is hashed here at once from that descriptor (the inode written, reopened read-only), a
   * bigger one, or one being hashed already, by rehash() (`later` when the kernel closed it).
   * Never throws.
   */
  hashClosed(loc: Location, rel: string, fd: number, size: number, kernel: boolean): void {
    const r = this.core.live.has(virtualPath(loc.name, rel)) ? undefined : this.hashClosing(loc, rel, fd, size);
    if (r) this.queueHashed(loc, rel, r);
    else this.rehash(loc, rel, kernel); // by name, with its own error handling
  }

  /**
   * The hash of a small file whose last writer is closing it, read now from that writer's
   * descriptor `fd` (for refresh to commit with the entry); undefined when the file is big
   * (`size` when known, else what the hasher's fstat finds), being hashed already, changed while
   * read or unreadable. Never throws.
   */
  hashClosing(loc: Location, rel: string, fd: number, size = 0): FileHash | undefined {
    const key = `${loc.id}:${rel}`;
    if (size > INLINE_HASH_MAX || this.busy(key)) return undefined;
    try {
      const r = this.inlineHasher.hashOpen(fd, this.home.config.blockSize, INLINE_HASH_MAX);
      return r && !r.changed ? r : undefined;
    } catch {
      return undefined;
    }
  }

  /** A computed hash waits (HASH_COMMIT_MS) to be committed with the others. */
  private queueHashed(loc: Location, rel: string, r: FileHash): void {
    this.hashed.push({ loc, rel, r });
    this.awaitingCommit.add(`${loc.id}:${rel}`);
    if (!this.hashedTimer) {
      this.hashedTimer = setTimeout(() => this.commitHashes(), HASH_COMMIT_MS);
      this.hashedTimer.unref();
    }
  }

  /**
   * A name moved (renamed, or inside a renamed folder) while its hash was due, being computed
   * or waiting for its commit. A due one and a result waiting for its commit follow the name (a
   * rename changes no version, and the commit checks the version indexed there); one being
   * computed would be recorded at the old name, so the file is hashed again at its new one.
   * `rsync -a` renames every file right after closing it: each was hashed twice. Never throws.
   */
  moved(loc: Location, fromRel: string, toRel: string): void {
    const under = (rel: string) => rel === fromRel || rel.startsWith(`${fromRel}/`);
    const key = (rel: string) => `${loc.id}:${rel}`;
    for (const h of this.hashed) {
      if (h.loc.id !== loc.id || !under(h.rel)) continue;
      this.awaitingCommit.delete(key(h.rel));
      h.rel = toRel + h.rel.slice(fromRel.length);
      this.awaitingCommit.add(key(h.rel));
    }
    const prefix = key('');
    for (const [k, d] of [...this.due]) {
      if (!k.startsWith(prefix) || !under(d.rel)) continue;
      this.due.delete(k);
      d.rel = toRel + d.rel.slice(fromRel.length);
      this.due.set(key(d.rel), d);
    }
    for (const k of [...this.rehashing]) {
      const rel = k.slice(prefix.length);
      if (k.startsWith(prefix) && under(rel)) this.rehash(loc, toRel + rel.slice(fromRel.length));
    }
  }

  /**
   * Commits the hashes computed in the last few milliseconds in one transaction (a commit per
   * file was a large part of a `tar x` into the mount). A hash is derived data: a crash before
   * its commit only means the next scan computes it again.
   */
  commitHashes(): void {
    if (this.hashedTimer) clearTimeout(this.hashedTimer);
    this.hashedTimer = undefined;
    const done = this.hashed.splice(0);
    this.awaitingCommit.clear();
    if (done.length === 0 || !this.home.db.open) return;
    try {
      this.commitHashed(done);
    } catch (err) {
      // The index is busy or closing: these files are re-hashed by the next scan.
      noteSwallowed(this.core.log, 'local writer: committing hashes', err, { files: done.length });
    }
  }

  private commitHashed(done: { loc: Location; rel: string; r: FileHash }[]): void {
    const stale: { loc: Location; rel: string }[] = [];
    groupedWrite(this.home.db, () => {
      for (const { loc, rel, r } of done) {
        const e = this.home.entries.resolve(loc.id, rel);
        if (e?.type === 'file' && e.version !== hashedVersion(r)) stale.push({ loc, rel }); // changed since: hash it again
        if (!e || e.version !== hashedVersion(r)) continue;
        this.home.blobs.put({ hash: r.hash, size: r.size, blockSize: this.home.config.blockSize, blockHashes: r.blockHashes });
        this.home.entries.update(e, { ...e, hash: r.hash }, rel);
      }
    });
    // A hash changes nothing the kernel caches (size, times, mode, etag): no invalidation sweep.
    for (const { loc, rel } of done) this.core.resolver.invalidatePath(virtualPath(loc.name, rel), false, false);
    for (const { loc, rel } of stale) this.rehash(loc, rel);
  }
}
