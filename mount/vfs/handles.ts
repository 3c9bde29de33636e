import type { FileHandle } from 'node:fs/promises';
import type { RawFile } from '../../core/raw-file';
import { FsError } from '../../core/fs-error';
import type { Location } from '../../index/locations';
import type { BlockReader } from './block-reader';
import type { Caller } from './types';

/** A real file of a local location, read and written directly. */
export interface LocalHandle {
  kind: 'local';
  fd: RawFile;
  vpath: string;
  location: Location;
  rel: string;
  entryId: number;
  writable: boolean;
  append: boolean;
  dirty: boolean;
  /** A commit started after a flush answered by the front end itself (VfsCore.flushed): flush, fsync and release wait for it. */
  pending?: Promise<void>;
  /** The commit a front-end flush asked for, waiting briefly for the close's RELEASE to do it instead (VfsCore.flushed). */
  flushTimer?: NodeJS.Timeout;
  /** Opened by a kernel front end (OpenFlags.kernel): its commits tell no kernel-cache listener. */
  kernel?: boolean;
  /** Written by the kernel itself (FUSE passthrough): always dirty, size from its fstat (VfsCore.passthroughWriting). */
  passthrough?: boolean;
}

/** Drops a flush's delayed commit: the caller (flush, fsync, release) commits itself. */
export function cancelFlushCommit(h: LocalHandle): void {
  if (h.flushTimer) clearTimeout(h.flushTimer);
  h.flushTimer = undefined;
}

/** A private copy under staging/ of a file of a cloud or write-back location. */
export interface StagedHandle {
  kind: 'staged';
  fd: FileHandle;
  vpath: string;
  location: Location;
  rel: string;
  stagingFile: string;
  /** The source's version this copy was based on; null when the file did not exist there. */
  baseVersion: string | null;
  /** The queued staging file this copy started from (held back from upload while open). */
  pinned?: string;
  /** The file was deleted or replaced while open: later writes are not committed. */
  detached?: boolean;
  /** Opened by a kernel front end (OpenFlags.kernel): its commits tell no kernel-cache listener. */
  kernel?: boolean;
  /** The owner its staging copy carries to a write-back folder (StagedOwners). */
  owner?: Caller;
  /** The permission bits its open asked for, when that open created the name. */
  createMode?: number;
  writable: boolean;
  append: boolean;
  dirty: boolean;
}

/** Content read block by block through the cache: from any replica by hash, or one version of a remote object. */
export interface BlobHandle {
  kind: 'blob';
  vpath: string;
  reader: BlockReader;
}

export type Handle = LocalHandle | StagedHandle | BlobHandle;

/** Open handles by number. FUSE file handles are 32-bit, so numbers wrap and skip live ones. */
export class HandleTable {
  private readonly handles = new Map<number, Handle>();
  private next = 1;

  add(h: Handle): number {
    while (this.handles.has(this.next) || this.next === 0) this.next = (this.next + 1) >>> 0;
    const fh = this.next;
    this.next = (this.next + 1) >>> 0;
    this.handles.set(fh, h);
    return fh;
  }

  /** Throws EBADF for an unknown handle. */
  get(fh: number): Handle {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF', `no open handle ${fh}`);
    return h;
  }

  delete(fh: number): Handle | undefined {
    const h = this.handles.get(fh);
    this.handles.delete(fh);
    return h;
  }

  all(): IterableIterator<[number, Handle]> {
    return this.handles.entries();
  }

  get size(): number {
    return this.handles.size;
  }
}
