import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config';

/**
 * What vdfs may hold in memory, by configuration. The sum is the documented ceiling of the
 * caches (docs/scale.md); the process adds Node itself (~60 MB) and transient work (one
 * directory listing, a bounded hash backlog).
 */
export interface MemoryBudget {
  /** SQLite page cache per connection (`index.cacheSize`). */
  indexCache: number;
  /** index.db mapped into memory (`index.mmapSize`). */
  indexMmap: number;
  /** The daemon's path -> entry LRU (`resolver.cacheSize`). */
  resolverCache: number;
  /** The block cache's memory tier (`cache.memorySize`). */
  blockMemory: number;
  total: number;
}

export function memoryBudget(c: Config): MemoryBudget {
  const b = { indexCache: c['index.cacheSize'], indexMmap: c['index.mmapSize'], resolverCache: c['resolver.cacheSize'], blockMemory: c['cache.memorySize'] };
  return { ...b, total: b.indexCache + b.indexMmap + b.resolverCache + b.blockMemory };
}

/** Resident and peak resident bytes of a process, from /proc (null when it is gone). */
export function processMemory(pid: number): { rss: number; peakRss: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), peakRss: kb('VmHWM') };
  } catch {
    return null;
  }
}

const PID_FILE = 'daemon.pid';

/** Records the running daemon's pid in the home, for `vdfs status`. Never throws. */
export function writeDaemonPid(home: string): void {
  try {
    writeFileSync(join(home, PID_FILE), `${process.pid}\n`, { mode: 0o600 });
  } catch {
    /* status then shows no daemon */
  }
}

export function removeDaemonPid(home: string): void {
  try {
    if (readFileSync(join(home, PID_FILE), 'utf8').trim() === String(process.pid)) rmSync(join(home, PID_FILE), { force: true });
  } catch {
    /* already gone */
  }
}

/** The daemon serving this home, when one runs: pid and memory. A stale pid file (process gone, or not node) gives null. */
export function daemonMemory(home: string): { pid: number; rss: number; peakRss: number } | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(home, PID_FILE), 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmd.includes('node') && !cmd.includes('vdfs')) return null;
  } catch {
    return null;
  }
  const m = processMemory(pid);
  return m ? { pid, ...m } : null;
}
