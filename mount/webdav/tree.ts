import type { Attr, Vfs } from '../vfs/types';
import { isHiddenName } from './junk';
import { joinPath } from './paths';

/** Counts VFS handles held by this server so /~vdfs/metrics can show leaks. Plain data: nothing throws. */
export interface HandleCounter {
  open: number;
}

export const CHUNK = 1 << 20;

/** Opens a handle and counts it; pair with release(). */
export async function openCounted(vfs: Vfs, handles: HandleCounter, path: string, flags?: Parameters<Vfs['open']>[1]): Promise<number> {
  const fh = await vfs.open(path, flags);
  handles.open++;
  return fh;
}

export async function releaseCounted(vfs: Vfs, handles: HandleCounter, fh: number): Promise<void> {
  handles.open--;
  await vfs.release(fh);
}

/** Deletes a file, symlink or whole collection (children first). Throws FsError. */
export async function deleteTree(vfs: Vfs, path: string, attr: Attr): Promise<void> {
  if (attr.type !== 'dir') return vfs.unlink(path);
  for (const e of await vfs.readdir(path)) await deleteTree(vfs, joinPath(path, e.name), e.attr);
  await vfs.rmdir(path);
}

/** Copies file bytes in 1 MiB chunks and fsyncs the copy before answering (201 means durable). */
export async function copyFile(vfs: Vfs, handles: HandleCounter, src: string, dst: string, mode: number): Promise<void> {
  const rfh = await openCounted(vfs, handles, src);
  try {
    const wfh = await openCounted(vfs, handles, dst, { write: true, create: true, truncate: true, mode });
    try {
      for (let off = 0; ;) {
        const buf = await vfs.read(rfh, off, CHUNK);
        if (buf.length === 0) break;
        await vfs.write(wfh, off, buf);
        off += buf.length;
        if (buf.length < CHUNK) break;
      }
      await vfs.fsync(wfh);
    } finally {
      await releaseCounted(vfs, handles, wfh);
    }
  } finally {
    await releaseCounted(vfs, handles, rfh);
  }
}

async function copyProps(vfs: Vfs, src: string, dst: string): Promise<void> {
  const props = await vfs.getProps(src);
  if (props.length > 0) await vfs.patchProps(dst, props, []);
}

/**
 * Copies `src` to a `dst` that does not exist: files with their bytes, collections with
 * (depth infinity) or without (depth 0) their members, symlinks as symlinks, dead
 * properties along. Throws FsError.
 */
export async function copyTree(vfs: Vfs, handles: HandleCounter, src: string, dst: string, attr: Attr, depth: 0 | 'infinity'): Promise<void> {
  if (attr.type === 'symlink') {
    await vfs.symlink(await vfs.readlink(src), dst);
    return;
  }
  if (attr.type === 'dir') {
    await vfs.mkdir(dst, attr.mode);
    await copyProps(vfs, src, dst);
    if (depth === 0) return;
    for (const e of await vfs.readdir(src)) {
      if (isHiddenName(e.name)) continue;
      await copyTree(vfs, handles, joinPath(src, e.name), joinPath(dst, e.name), e.attr, depth);
    }
    return;
  }
  await copyFile(vfs, handles, src, dst, attr.mode);
  await copyProps(vfs, src, dst);
}
