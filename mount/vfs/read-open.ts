import { constants as C, read } from 'node:fs';
import { FsError, toFsError } from '../../core/fs-error';
import type { Entry } from '../../index/entries';
import type { Location } from '../../index/locations';
import type { Blob } from '../../index/blobs';
import { localVersion } from '../../core/local-stat';
import { openFileBeneath } from '../../core/beneath';
import { isSpecial } from '../../core/provider';
import { BlobReader, type BlockStore } from './blob-reader';
import { VersionReader } from './version-reader';
import type { BlockReader } from './block-reader';
import type { FolderAheadHost, ListedFile } from './folder-ahead';
import type { Handle, LocalHandle, StagedHandle } from './handles';
import { HASH_RE } from './namespace';
import type { Replicas } from './replicas';
import { isStaged } from './targets';
import type { WriterHost } from './writer-host';

/** What opening for reading uses of the VFS core (VfsCore is one). */
export interface ReadHost extends Pick<WriterHost, 'home' | 'resolver' | 'providers' | 'featuresOf'> {
  readonly replicas: Replicas;
  /** A local file seen to differ from the index is refreshed through this. */
  readonly writer: { readonly sync: { noteExternalChange(loc: Location, rel: string): void } };
  /** Staged bytes not uploaded yet are what a reader sees. Throws FsError. */
  readonly staged: { openPendingForRead(loc: Location, rel: string, vpath: string): Promise<StagedHandle | undefined> };
}

/** fs.read on the raw descriptor: the hot path of every FUSE read, without FileHandle's extra layer. */
function pread(fd: number, buf: Buffer, at: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, at, buf.length - at, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Reads a handle's bytes at `offset` into `buf`: pread on a real file, else its block reader. Throws FsError. */
export async function readHandle(h: Handle, buf: Buffer, offset: number): Promise<number> {
  if (h.kind === 'local' || h.kind === 'staged') {
    let got = 0;
    while (got < buf.length) {
      const n = await pread(h.fd.fd, buf, got, offset + got).catch((err) => {
        throw toFsError(err, `read ${h.vpath}`);
      });
      if (n === 0) break;
      got += n;
    }
    return got;
  }
  return h.reader.readInto(offset, buf);
}

/** The read side of open(): which handle serves a path's content. */
export class ReadOpener implements FolderAheadHost {
  constructor(
    private readonly core: ReadHost,
    private readonly blocks: BlockStore,
  ) {}

  private get home() {
    return this.core.home;
  }

  /**
   * FolderAheadHost: a reader for fetching `path`'s content ahead of a reader: only content
   * that a read would fetch from a remote replica; undefined for a local location, a staged copy
   * not uploaded yet, a best replica that is local or pinned, anything not a file. Never throws.
   */
  async reader(path: string): Promise<BlockReader | undefined> {
    try {
      const r = this.core.resolver.resolve(path);
      if (r.kind !== 'entry' || r.entry.type !== 'file' || this.isLocal(r.location)) return undefined;
      if (isStaged(r.location, this.core.featuresOf(r.location))) {
        const pending = await this.core.staged.openPendingForRead(r.location, r.rel, path);
        if (pending) {
          await pending.fd.close();
          return undefined;
        }
      }
      if (!r.entry.hash) return this.versionReader(r.location, r.entry, r.rel, path);
      if (!this.core.replicas.sources(r.entry.hash)[0]?.stream) return undefined;
      return this.blobReader(r.entry.hash, path);
    } catch {
      return undefined;
    }
  }

  /** FolderAheadHost: the files of a folder in readdir order (the index's). Never throws. */
  listing(dir: string): ListedFile[] | undefined {
    try {
      const r = this.core.resolver.resolve(dir);
      return r.kind === 'entry' && r.entry.type === 'dir' ? this.home.entries.children(r.entry.id).filter((c) => c.type === 'file') : undefined;
    } catch {
      return undefined; // gone meanwhile: nothing to fetch ahead
    }
  }

  /** Has real files on this machine (read directly). */
  private isLocal(loc: Location): boolean {
    return this.core.featuresOf(loc).localFiles;
  }

  /**
   * Opens a path for reading: a local file directly, a staged copy not uploaded yet, else the
   * content by hash (or one remote version) through the block cache. Throws FsError (ENOENT,
   * EISDIR, ELOOP, EPERM for special files, EHOSTDOWN when no replica is reachable).
   */
  async open(path: string): Promise<Handle> {
    let r = this.core.resolver.resolve(path);
    if (r.kind === 'root') throw new FsError('EISDIR', `${path} is a directory`);
    if (r.kind === 'virtual') {
      const hash = r.parts[0] === 'by-hash' && r.parts.length === 2 ? r.parts[1] : undefined;
      if (!hash || !HASH_RE.test(hash)) throw new FsError(r.parts.length <= 1 ? 'EISDIR' : 'ENOENT', `${path}: cannot open`);
      return { kind: 'blob', vpath: path, reader: this.blobReader(hash, path) };
    }
    if (r.entry.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    if (r.entry.type === 'symlink') throw new FsError('ELOOP', `${path} is a symlink`);
    // The kernel opens FIFOs and devices of the mount itself; anyone else asking (WebDAV, vdfs
    // cat) would block on a FIFO or read a device: they have no content to serve.
    if (isSpecial(r.entry.type)) throw new FsError('EPERM', `${path} is a ${r.entry.type}: it has no content to read`);
    if (isStaged(r.location, this.core.featuresOf(r.location))) {
      const pending = await this.core.staged.openPendingForRead(r.location, r.rel, path);
      if (pending) return pending;
      // Uploaded (or moved) while we looked: the entry now names the source's version.
      const now = this.core.resolver.resolve(path);
      if (now.kind !== 'entry' || now.entry.type !== 'file') throw new FsError('ENOENT', `${path}: removed while it was being opened`);
      r = now;
    }
    const local = await this.openLocal(path, r.location, r.entry, r.rel);
    if (local) return local;
    if (!r.entry.hash) {
      const reader = this.versionReader(r.location, r.entry, r.rel, path);
      if (reader) return { kind: 'blob', vpath: path, reader };
      throw new FsError('EHOSTDOWN', `${path}: its location ${r.location.name} is unreachable and its content was never hashed, so no other replica is known`);
    }
    return { kind: 'blob', vpath: path, reader: this.blobReader(r.entry.hash, path) };
  }

  /** The real file, when its location is local and reachable; undefined when it is not. */
  private async openLocal(path: string, loc: Location, entry: Entry, rel: string): Promise<LocalHandle | undefined> {
    if (!this.isLocal(loc)) return undefined;
    const provider = this.core.providers.get(loc);
    try {
      // No symlink followed on the way (a directory swapped for a link after the scan).
      // O_NONBLOCK: a FIFO planted under the name must not block the open (it may run on the JS thread).
      const fd = await openFileBeneath(loc.uri, rel, C.O_RDONLY | C.O_NONBLOCK);
      const st = await fd.stat({ bigint: true });
      if (!st.isFile()) {
        await fd.close();
        throw new FsError('ENOENT', `${path} is no longer a regular file on disk`);
      }
      // Another file than the indexed one (other inode, size or mtime): the index follows
      // the disk; what is served is still that location's own file at that name.
      if (localVersion(st) !== entry.version) this.core.writer.sync.noteExternalChange(loc, rel);
      return { kind: 'local', fd, vpath: path, location: loc, rel, entryId: entry.id, writable: false, append: false, dirty: false };
    } catch (err) {
      const fe = toFsError(err, `open ${path}`);
      if (fe.code !== 'ENOENT' && fe.code !== 'EACCES' && fe.code !== 'EIO') throw fe;
      if (await provider.isOnline()) {
        if (fe.code === 'ENOENT') this.core.writer.sync.noteExternalChange(loc, rel);
        if (fe.code !== 'ENOENT' || !entry.hash) throw fe;
      } else if (loc.online) {
        this.home.locations.setOnline(loc.id, false);
        this.core.resolver.invalidate();
      }
      return undefined; // unreachable or gone: read another replica by hash
    }
  }

  /**
   * Content not hashed yet on a remote location (an S3 object indexed from its listing): read
   * that exact version by ranged reads through the cache. Undefined for a local location (it
   * was unreachable) or a kind this build cannot open.
   */
  private versionReader(loc: Location, entry: Entry, rel: string, path: string): VersionReader | undefined {
    if (!entry.version || this.isLocal(loc)) return undefined;
    try {
      this.core.providers.get(loc);
    } catch {
      return undefined;
    }
    const content = { locationId: loc.id, rel, version: entry.version, size: entry.size, label: path };
    return new VersionReader(this.blocks, () => this.core.providers.get(loc), content, this.home.config.blockSize);
  }

  private blobReader(hash: string, path: string): BlobReader {
    const blob = this.home.blobs.get(hash);
    if (!blob) throw new FsError('ENOENT', `${path}: content ${hash.slice(0, 16)} is not known to the index`);
    const trust = { lists: (h: string) => this.home.blobs.peerLists(h), adopt: (b: Blob) => this.home.blobs.put(b) };
    return new BlobReader(this.blocks, blob, () => this.core.replicas.sources(hash), trust);
  }
}
