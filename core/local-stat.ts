import type { BigIntStats } from 'node:fs';
import type { EntryType, ProviderEntry } from './provider';

/*
 * A local disk's entries in the Provider vocabulary. Shared by the local provider, the scanner,
 * and the VFS, which reads and writes local files directly (the fast path) and must compute
 * the same version token the provider does.
 */

type TypeTests = {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
};

/** The entry type of what lstat saw (special files included: they are entries of local locations). */
export function entryTypeOf(st: TypeTests): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  return undefined;
}

/** The version token of a local file: inode, size and mtime in ns. */
export function localVersion(st: Pick<BigIntStats, 'ino' | 'size' | 'mtimeNs'>): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

/** A ProviderEntry from lstat's answer (a device's number in `rdev`). */
export function entryFromStats(name: string, st: BigIntStats, target?: string): ProviderEntry | undefined {
  const type = entryTypeOf(st);
  if (!type) return undefined;
  return {
    name,
    type,
    size: type === 'dir' ? 0 : Number(st.size),
    mtimeSec: Number(st.mtimeNs / 1_000_000_000n),
    mtimeNsec: Number(st.mtimeNs % 1_000_000_000n),
    mode: Number(st.mode) & 0o7777,
    version: localVersion(st),
    target,
    ...(type === 'chardev' || type === 'blockdev' ? { rdev: Number(st.rdev) } : {}),
  };
}
