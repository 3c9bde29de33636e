import { promises as fsp, statSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { withParent } from '../../core/beneath';
import { toFsError } from '../../core/fs-error';
import type { Target } from './targets';
import type { Caller } from './types';
import { createdOwner } from './local-inode';

const ME = process.getuid?.() ?? -1;
/** Past this many, the oldest are forgotten (a miss stats the staging file again). */
const MAX = 10_000;

/**
 * Owners of a write-back folder's staged files. On the disk a created file gets its caller's
 * uid and gid (the folder's gid when it is setgid) and an edited one keeps its owner, but a
 * staged file is a private copy under staging/ until its upload. So the copy carries the
 * owner (fchown; only a daemon run as root can give one away, as on a disk), the upload puts
 * it on the placed file, and getattr shows it meanwhile. Kept by entry id, so that getattr
 * needs no stat; a miss (after a restart, or past the bound) stats the staging file again.
 */
export class StagedOwners {
  private readonly byEntry = new Map<number, Caller>();

  /**
   * The owner a new staging copy gets: that of the staged bytes it starts from, else of the
   * disk's file it edits, else (a new name) the caller's. Undefined when the daemon could not
   * give it (not root) or nothing says. Never throws: an owner it cannot read is the daemon's.
   */
  async of(t: Target, startsFrom: string | undefined, caller: Caller | undefined): Promise<Caller | undefined> {
    if (ME !== 0) return undefined;
    const stat = (p: Promise<{ uid: number; gid: number; mode: number }>) => p.catch(() => undefined);
    if (startsFrom) return stat(fsp.stat(startsFrom));
    if (t.existing) return stat(withParent(t.location.uri, t.rel, (at) => fsp.lstat(at)));
    if (!caller) return undefined;
    return createdOwner(t, caller).catch(() => ({ uid: caller.uid, gid: caller.gid }));
  }

  /** Gives the staging copy `fd` its owner (see `of`). Throws FsError. */
  async give(fd: FileHandle, owner: Caller | undefined, what: string): Promise<void> {
    if (!owner) return;
    await fd.chown(owner.uid, owner.gid).catch((err) => {
      throw toFsError(err, what);
    });
  }

  /** chown of staging files (-1 keeps an id), as the disk answers (EPERM unless root). Throws FsError. */
  async change(files: string[], uid: number, gid: number, what: string): Promise<Caller | undefined> {
    for (const f of files) {
      await fsp.chown(f, uid, gid).catch((err) => {
        throw toFsError(err, what);
      });
    }
    if (files.length === 0) return undefined;
    const st = await fsp.stat(files[files.length - 1]);
    return { uid: st.uid, gid: st.gid };
  }

  remember(entryId: number, owner: Caller): void {
    this.byEntry.delete(entryId);
    this.byEntry.set(entryId, owner);
    if (this.byEntry.size > MAX) this.byEntry.delete(this.byEntry.keys().next().value as number);
  }

  /** The owner of an entry's staged bytes: remembered, else from `stagingFile()` (undefined: none left). */
  get(entryId: number, stagingFile: () => string | undefined): Caller | undefined {
    const known = this.byEntry.get(entryId);
    if (known) return known;
    const file = stagingFile();
    if (!file) return undefined;
    try {
      const st = statSync(file);
      const owner = { uid: st.uid, gid: st.gid };
      this.remember(entryId, owner);
      return owner;
    } catch {
      return undefined; // uploaded and removed meanwhile: the disk's file says
    }
  }
}
