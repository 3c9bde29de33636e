import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { FsError, toFsError } from '../../core/fs-error';
import type { EntryFields } from '../../index/entries';
import type { Location } from '../../index/locations';
import type { StagedHandle } from './handles';
import { writeAll } from './live-sizes';
import type { Caller, OpenFlags } from './types';
import { resolveTarget } from './targets';
import type { UploadQueue } from './upload-queue';
import type { WriterHost } from './writer-host';
import { StagedOwners } from './staged-owners';
import type { Entry } from '../../index/entries';

/** The index version of a file whose newest bytes are staged (not uploaded yet). */
export function isStagedVersion(version: string | null): boolean {
  return version !== null && version.startsWith('staged:');
}

/**
 * New content for locations that are not written through (cloud, write-back disks): a file
 * opened for writing gets a private copy under the home's staging/; fsync and close make it
 * durable (fdatasync, then the queue row and the entry in one SQLite commit) before they
 * answer, and the upload queue copies it to the source afterwards. Until then reads of the
 * file see the staged bytes.
 */
export class StagedWriter {
  private readonly open = new Set<string>();
  /** Staged files that open copies started from, by number of such copies. */
  private readonly pinned = new Map<string, number>();
  private readonly owners = new StagedOwners();

  constructor(
    private readonly core: WriterHost,
    readonly queue: UploadQueue,
  ) {}

  private get home() {
    return this.core.home;
  }

  /** Is a staging file still open for writing, or the base of an open copy (not ready to upload)? */
  isBusy(file: string): boolean {
    return this.open.has(file) || this.pinned.has(file);
  }

  private unpin(file: string | undefined): void {
    if (!file) return;
    const n = (this.pinned.get(file) ?? 1) - 1;
    if (n > 0) {
      this.pinned.set(file, n);
      return;
    }
    this.pinned.delete(file);
    // Replaced by a newer close while pinned: nothing needs it any more.
    if (!this.open.has(file) && !this.queue.references(file)) void fsp.rm(file, { force: true }).catch(() => undefined);
  }

  private newStagingFile(): string {
    return join(this.home.stagingDir, `${Date.now()}-${randomBytes(6).toString('hex')}.part`);
  }

  /** Opens a private copy: of the pending staged bytes, else of the source's content (unless truncating). */
  async openForWrite(path: string, flags: OpenFlags): Promise<StagedHandle> {
    const t = resolveTarget(this.home, path, 'open', (l) => this.core.featuresOf(l));
    if (t.existing?.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    if (t.existing && t.existing.type !== 'file') throw new FsError('EPERM', `${path} is not a regular file`);
    if (!t.existing && !flags.create) throw new FsError('ENOENT', `${path}: no such file`);
    if (t.existing && flags.create && flags.exclusive) throw new FsError('EEXIST', `${path} already exists`);
    // An upload of this file running right now finishes first; a queued one waits until this
    // handle is closed (its bytes are our starting point, and our close replaces them).
    // Held until the pin is set: an upload starting in between would remove the staged bytes
    // we copy from and move the base on under us.
    const release = await this.queue.hold(t.location.id, t.rel);
    const pending = this.queue.pending(t.location.id, t.rel);
    if (pending) this.pinned.set(pending.staging_file, (this.pinned.get(pending.staging_file) ?? 0) + 1);
    release();
    const provider = this.core.providers.get(t.location);
    // The base is what the source holds now (the index may lag behind it), unless staged bytes
    // are already waiting: then the base stays the one they were made from.
    let baseVersion: string | null = pending ? pending.base_version : null;
    if (!pending)
      baseVersion = await provider.stat(t.rel).then(
        (st) => st.version,
        (err: FsError) => {
          if (err.code === 'ENOENT') return null;
          throw err;
        },
      );
    if (t.existing && !pending && baseVersion === null && !flags.truncate) throw new FsError('ENOENT', `${path} was deleted at the source`);
    const file = this.newStagingFile();
    await fsp.mkdir(this.home.stagingDir, { recursive: true, mode: 0o700 });
    try {
      if (t.existing && !flags.truncate) {
        if (pending) await fsp.copyFile(pending.staging_file, file);
        else await pipeline(await provider.readStream(t.rel, { version: baseVersion ?? undefined }), createWriteStream(file));
      }
      // O_APPEND on the copy too: on Linux a positioned write to an O_APPEND file appends.
      const fd = await fsp.open(file, flags.append ? 'a+' : t.existing && !flags.truncate ? 'r+' : 'w+', 0o600);
      this.open.add(file);
      const owner = this.core.featuresOf(t.location).localFiles ? await this.owners.of(t, pending?.staging_file, flags.owner) : undefined;
      await this.owners.give(fd, owner, `open ${path}`);
      const st = await fd.stat();
      this.core.live.opened(path, st.size, Date.now());
      const h: StagedHandle = {
        kind: 'staged',
        fd,
        vpath: path,
        location: t.location,
        rel: t.rel,
        stagingFile: file,
        baseVersion,
        writable: true,
        append: !!flags.append,
        dirty: !t.existing || !!flags.truncate,
        pinned: pending?.staging_file,
        kernel: !!flags.kernel,
        owner,
        createMode: !t.existing && flags.mode !== undefined ? flags.mode & 0o7777 : undefined,
      };
      if (h.dirty) await this.commit(h, false); // a created or truncated file exists from now on
      return h;
    } catch (err) {
      this.unpin(pending?.staging_file);
      this.open.delete(file);
      await fsp.rm(file, { force: true }).catch(() => undefined);
      throw toFsError(err, `open ${path}`);
    }
  }

  /** Reads of a file whose staged bytes are not uploaded yet come from the staging file. */
  async openPendingForRead(loc: Location, rel: string, vpath: string): Promise<StagedHandle | undefined> {
    const pending = this.queue.pending(loc.id, rel);
    if (!pending) return undefined;
    const fd = await fsp.open(pending.staging_file, 'r').catch(() => undefined);
    if (!fd) return undefined; // uploaded and removed meanwhile: read the source
    return { kind: 'staged', fd, vpath, location: loc, rel, stagingFile: pending.staging_file, baseVersion: pending.base_version, writable: false, append: false, dirty: false };
  }

  async write(h: StagedHandle, offset: number, data: Buffer): Promise<number> {
    if (!h.writable) throw new FsError('EBADF', `${h.vpath} is not open for writing`);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `bad offset ${offset}`);
    const done = await writeAll(h.fd, data, h.append ? null : offset, `write ${h.vpath} (staging)`);
    h.dirty = true;
    this.core.live.wrote(h.vpath, offset, done, h.append);
    return done;
  }

  async truncateHandle(h: StagedHandle, size: number): Promise<void> {
    await h.fd.truncate(size).catch((err) => {
      throw toFsError(err, `truncate ${h.vpath}`);
    });
    h.dirty = true;
    this.core.live.set(h.vpath, size);
  }

  /** The file (or directory) at `path` was deleted or replaced: its open copies are detached. */
  detach(path: string): void {
    for (const [, h] of this.core.handles.all()) {
      if (h.kind === 'staged' && h.writable && (h.vpath === path || h.vpath.startsWith(`${path}/`))) h.detached = true;
    }
  }

  /** Durable, then acknowledged: fdatasync the staged bytes, then one commit of queue row + entry. */
  async commit(h: StagedHandle, releasing: boolean): Promise<void> {
    h.dirty = false;
    if (h.detached) return; // written after an unlink: goes nowhere, like on a local disk
    await h.fd.datasync().catch((err) => {
      throw toFsError(err, `fsync ${h.vpath} (staging)`);
    });
    const st = await h.fd.stat();
    const now = Date.now();
    // A time set by utimens since the last write (cp -p and rsync set times before close) is kept.
    const setNs = this.core.live.get(h.vpath)?.mtimeNs;
    const mtime = setNs !== undefined ? { sec: Number(setNs / 1_000_000_000n), nsec: Number(setNs % 1_000_000_000n) } : { sec: Math.floor(now / 1000), nsec: (now % 1000) * 1e6 };
    const { entries, db } = this.home;
    let replaced: string | undefined;
    let entryId = 0;
    db.transaction(() => {
      const q = this.queue.enqueue(h.location.id, h.rel, h.stagingFile, h.baseVersion);
      replaced = q.replaced;
      const fields: EntryFields = {
        type: 'file',
        size: st.size,
        mtimeSec: mtime.sec,
        mtimeNsec: mtime.nsec,
        // A name this open made gets the permission bits asked for (the caller's umask applied), as on a disk.
        mode: h.createMode ?? 0o644,
        version: `staged:${q.id}:${st.size}:${now}`,
        hash: null,
        target: null,
      };
      const e = entries.resolve(h.location.id, h.rel);
      entryId = e?.id ?? 0;
      if (e) entries.update(e, { ...fields, mode: e.mode || 0o644 }, h.rel);
      else {
        const parentRel = h.rel.includes('/') ? h.rel.slice(0, h.rel.lastIndexOf('/')) : '';
        const parent = entries.resolve(h.location.id, parentRel);
        if (!parent || parent.type !== 'dir') throw new FsError('ENOENT', `${h.vpath}: its directory was removed`);
        entryId = entries.insert(h.location.id, parent.id, h.rel.slice(h.rel.lastIndexOf('/') + 1), fields, h.rel);
      }
    }).immediate();
    if (h.owner) this.owners.remember(entryId, h.owner);
    // This file only; the kernel, when it wrote the file, already knows its size and times.
    this.core.resolver.invalidatePath(h.vpath, false, !h.kernel);
    if (replaced && !this.isBusy(replaced)) await fsp.rm(replaced, { force: true }).catch(() => undefined);
    if (releasing) this.queue.kick();
  }

  async release(h: StagedHandle): Promise<void> {
    try {
      if (h.dirty) await this.commit(h, true);
    } finally {
      await h.fd.close().catch(() => undefined);
      if (h.writable) {
        this.open.delete(h.stagingFile);
        this.unpin(h.pinned);
        this.core.live.closed(h.vpath);
        // A copy that was never committed (opened, not written) or was replaced is not kept.
        if (!this.queue.references(h.stagingFile)) await fsp.rm(h.stagingFile, { force: true }).catch(() => undefined);
        this.queue.kick();
      }
    }
  }

  /**
   * chown of a write-back folder's file whose bytes are staged: the pending copy and the copies
   * open for writing (a close replaces the pending one) carry the owner to the disk. True when
   * staged bytes are pending (the disk's file is replaced by them); false when the disk's file
   * must be changed too. Throws FsError (EPERM unless the daemon is root, as on a disk).
   */
  async chown(path: string, uid: number, gid: number, kernel: boolean): Promise<boolean> {
    const t = resolveTarget(this.home, path, 'chown', (l) => this.core.featuresOf(l));
    if (t.existing?.type !== 'file' || !this.core.featuresOf(t.location).localFiles) return false;
    // No upload of it runs meanwhile: one that read the old owner would land it and drop the copy.
    const release = await this.queue.hold(t.location.id, t.rel);
    try {
      const pending = this.queue.pending(t.location.id, t.rel);
      const open = this.openCopies(path);
      const files = [...open.map((h) => h.stagingFile), ...(pending ? [pending.staging_file] : [])];
      if (files.length === 0) return false;
      const now = await this.owners.change(files, uid, gid, `chown ${path}`);
      for (const h of open) h.owner = now;
      if (now) this.owners.remember(t.existing.id, now);
      this.core.resolver.invalidatePath(path, false, !kernel);
      return pending !== undefined;
    } finally {
      release();
    }
  }

  /** The staged copies of `path` open for writing. */
  private openCopies(path: string): StagedHandle[] {
    return [...this.core.handles.all()].map(([, h]) => h).filter((h): h is StagedHandle => h.kind === 'staged' && h.writable && h.vpath === path);
  }

  /** The owner of a write-back folder's staged file (see StagedOwners); undefined: the daemon's. */
  ownerOf(locationId: number, rel: string, entry: Entry): Caller | undefined {
    return this.owners.get(entry.id, () => this.queue.pending(locationId, rel)?.staging_file);
  }

  /** truncate(path) on a staged location: a staged copy cut to size. */
  async truncate(path: string, size: number, kernel = false): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new FsError('EINVAL', `bad size ${size}`);
    // The kernel truncates an O_TRUNC open by path right after opening it: the open copies
    // are what later writes and closes commit, so they are what must be cut.
    const open = this.openCopies(path);
    if (open.length > 0) {
      for (const h of open) await this.truncateHandle(h, size);
      return;
    }
    const h = await this.openForWrite(path, { write: true, kernel });
    try {
      await this.truncateHandle(h, size);
    } finally {
      await this.release(h);
    }
  }
}
