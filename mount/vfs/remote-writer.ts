import { FsError } from '../../core/fs-error';
import type { EntryFields } from '../../index/entries';
import { checkRenameAncestry, resolveTarget, type Target } from './targets';
import { fieldsOfProvider } from './upload-queue';
import { moveOpenFiles, type WriterHost } from './writer-host';

/**
 * Namespace changes on cloud locations (S3, Drive), through the provider's API: content goes
 * through staging (StagedWriter), but directories, deletes and renames are applied at once.
 * Modes and times are kept in the index only (object stores have no such metadata); symlinks
 * cannot be stored and are refused with ENOTSUP.
 */
export class RemoteWriter {
  constructor(private readonly core: WriterHost) {}

  private get home() {
    return this.core.home;
  }

  private target(path: string, what: string): Target {
    return resolveTarget(this.home, path, what, (l) => this.core.featuresOf(l));
  }

  private dirFields(): EntryFields {
    const now = Date.now();
    return { type: 'dir', size: 0, mtimeSec: Math.floor(now / 1000), mtimeNsec: (now % 1000) * 1e6, mode: 0o755, version: null, hash: null, target: null };
  }

  /** `kernel` (here and below): see Vfs.mkdir (no invalidation sweep for a change the kernel made). */
  async mkdir(path: string, kernel = false): Promise<void> {
    const t = this.target(path, 'mkdir');
    if (t.existing) throw new FsError('EEXIST', `${path} already exists`);
    await this.core.providers.get(t.location).mkdir(t.rel);
    this.home.db.transaction(() => this.home.entries.insert(t.location.id, t.parent.id, t.name, this.dirFields(), t.rel)).immediate();
    this.core.resolver.invalidatePath(path, false, !kernel);
  }

  async remove(path: string, expect: 'file' | 'dir', kernel = false): Promise<void> {
    const t = this.target(path, expect === 'dir' ? 'rmdir' : 'unlink');
    const e = t.existing;
    if (!e) throw new FsError('ENOENT', `${path}: no such entry`);
    if (expect === 'dir' && e.type !== 'dir') throw new FsError('ENOTDIR', `${path} is not a directory`);
    if (expect === 'file' && e.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    if (e.type === 'dir' && this.home.entries.childCount(e.id) > 0) throw new FsError('ENOTEMPTY', `${path} is not empty`);
    const queue = this.core.staged.queue;
    // Held from here to the end: no upload of the path starts (and one running has finished)
    // before its rows are dropped, so nothing puts the object back after our delete.
    const release = await queue.hold(t.location.id, t.rel);
    try {
      await queue.cancel(t.location.id, t.rel);
      // Open copies of it write nowhere from now on (a close must not bring it back).
      this.core.staged.detach(path);
      await this.core.providers
        .get(t.location)
        .remove(t.rel)
        .catch((err: FsError) => {
          if (err.code !== 'ENOENT') throw err; // only staged so far: nothing to delete remotely
        });
      this.home.db
        .transaction(() => {
          const still = this.home.entries.get(e.id);
          if (still) this.home.entries.remove(still, t.rel);
        })
        .immediate();
      this.core.resolver.invalidatePath(path, e.type === 'dir', !kernel);
    } finally {
      release();
    }
  }

  async rename(from: string, to: string, noReplace: boolean, kernel = false): Promise<void> {
    const a = this.target(from, 'rename');
    const b = this.target(to, 'rename');
    if (!a.existing) throw new FsError('ENOENT', `${from}: no such entry`);
    if (a.location.id !== b.location.id) throw new FsError('EXDEV', `rename across locations (${a.location.name} -> ${b.location.name}): copy instead`);
    if (a.rel === b.rel) return;
    checkRenameAncestry(a, b, from, to, noReplace);
    if (b.existing) {
      if (noReplace) throw new FsError('EEXIST', `${to} already exists`);
      if (b.existing.type === 'dir' && a.existing.type !== 'dir') throw new FsError('EISDIR', `${to} is a directory`);
      if (b.existing.type !== 'dir' && a.existing.type === 'dir') throw new FsError('ENOTDIR', `${to} is not a directory`);
      if (b.existing.type === 'dir' && this.home.entries.childCount(b.existing.id) > 0) throw new FsError('ENOTEMPTY', `${to} is not empty`);
    }
    const queue = this.core.staged.queue;
    // Both names are held until the rows and entries are moved: an upload starting after we
    // saw the file as only staged would land at the old name, behind the moved entry's back.
    const releaseA = await queue.hold(a.location.id, a.rel);
    const releaseB = await queue.hold(b.location.id, b.rel);
    try {
      await this.renameHeld(a, b, from, to, kernel);
    } finally {
      releaseB();
      releaseA();
    }
  }

  /** rename() once both names are held in the upload queue. */
  private async renameHeld(a: Target, b: Target, from: string, to: string, kernel: boolean): Promise<void> {
    const queue = this.core.staged.queue;
    const provider = this.core.providers.get(a.location);
    const onlyStaged = await provider.stat(a.rel).then(
      () => false,
      (err: FsError) => {
        if (err.code === 'ENOENT' && queue.pending(a.location.id, a.rel)) return true;
        if (err.code === 'ENOENT' && a.existing!.type === 'dir') return true; // a directory of staged files only
        throw err;
      },
    );
    if (!onlyStaged) await provider.rename(a.rel, b.rel);
    // Staged bytes follow the file; their base is what now sits at the new name (if anything).
    const base = await provider.stat(b.rel).then(
      (s) => s.version,
      () => null,
    );
    // The file replaced at the new name: its staged bytes, if any, must not upload over ours, and
    // its open copies write nowhere from now on (their close must not replace the moved file).
    if (b.existing) await queue.cancel(b.location.id, b.rel);
    this.core.staged.detach(to);
    queue.move(a.location.id, a.rel, b.rel, (rel) => (rel === b.rel ? base : undefined));
    this.home.db
      .transaction(() => {
        const moving = this.home.entries.get(a.existing!.id);
        if (moving) this.home.entries.move(moving, b.parent.id, b.name, a.rel, b.rel);
        if (!onlyStaged && moving?.type === 'file' && !queue.pending(b.location.id, b.rel)) {
          // The object was copied: its version (ETag) may differ at the new key.
          void provider.stat(b.rel).then(
            (st) => {
              const e = this.home.entries.get(moving.id);
              // Only the version (ETag) is the object's: mode and mtime live in the index (a chmod before the rename kept).
              if (e) this.home.entries.update(e, { ...fieldsOfProvider(st, e.hash), mode: e.mode, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec }, b.rel);
              // The same bytes under a new version: nothing a kernel caches changed.
              this.core.resolver.invalidatePath(to, false, false);
            },
            () => undefined,
          );
        }
      })
      .immediate();
    const folders = a.existing!.type === 'dir' || b.existing?.type === 'dir';
    this.core.resolver.invalidatePath(from, folders, !kernel);
    this.core.resolver.invalidatePath(to, folders, !kernel);
    moveOpenFiles(this.core, [from, to]);
  }

  /** Modes and times live in the index only. */
  async setMeta(path: string, what: string, change: Partial<Pick<EntryFields, 'mode' | 'mtimeSec' | 'mtimeNsec'>>, kernel = false): Promise<void> {
    const t = this.target(path, what);
    if (!t.existing) throw new FsError('ENOENT', `${path}: no such entry`);
    const e = t.existing;
    this.home.db.transaction(() => this.home.entries.update(e, { ...e, ...change }, t.rel)).immediate();
    this.core.resolver.invalidatePath(path, false, !kernel);
  }
}
