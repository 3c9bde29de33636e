import type { BigIntStats } from 'node:fs';
import type { EntryType, ProviderEntry } from './provider';

/*
 * A local disk's entries in the Provider vocabulary. Shared by the local provider, the scanner,
 * and the VFS, which reads and writes local files directly (the fast path) and must compute
 * the same version token the provider does.
 */

/** The indexed type of a local file; undefined for what is not indexed. */
export function entryTypeOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return undefined; // sockets, fifos, devices are not indexed
}

/** The version token of a local file: inode, size and mtime in ns. */
export function localVersion(st: BigIntStats): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}

/** A ProviderEntry from lstat's answer; undefined for sockets, fifos and devices. */
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
  };
}
