import type { ProviderEntry } from '../../core/provider';

const FILE_MODE = 0o644;
const DIR_MODE = 0o755;

/** ETags come quoted ("abc"); the index stores them bare, If-Match sends them quoted. */
export function bareEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"|"$/g, '');
}

function mtimeOf(d: Date | undefined): { mtimeSec: number; mtimeNsec: number } {
  const ms = d ? d.getTime() : 0;
  return { mtimeSec: Math.floor(ms / 1000), mtimeNsec: (ms % 1000) * 1e6 };
}

export function fileEntry(name: string, size: number, etag: string | undefined, lastModified: Date | undefined): ProviderEntry {
  return { name, type: 'file', size, ...mtimeOf(lastModified), mode: FILE_MODE, version: bareEtag(etag) };
}

export function dirEntry(name: string, lastModified?: Date): ProviderEntry {
  return { name, type: 'dir', size: 0, ...mtimeOf(lastModified), mode: DIR_MODE, version: 'dir' };
}

/** One object of a recursive listing, relative to the location (a `dir/` marker ends with '/'). */
export interface RemoteObject {
  rel: string;
  size: number;
  /** Bare ETag. */
  version: string;
  lastModified?: Date;
}
