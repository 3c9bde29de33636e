import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FsError } from '../core/fs-error';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): { pid: number; what: string } | undefined {
  try {
    const [pid, what] = readFileSync(file, 'utf8').split('\n');
    return { pid: Number(pid) || 0, what: what ?? '' };
  } catch {
    return undefined; // released meanwhile
  }
}

/**
 * One scan at a time per home: an exclusive lock file `locks/scan.lock` holding the owner's
 * pid and what it scans. Per home, not per location, because every scan writes the same
 * index and two interleaved scans would only wait on each other's transactions. A lock
 * whose owner died (kill -9, power loss) is taken over. Returns the release function.
 * Throws EBUSY (naming the holder's pid) when a live process holds it.
 */
export function acquireScanLock(homeDir: string, what: string): () => void {
  const dir = join(homeDir, 'locks');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'scan.lock');
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      try {
        writeSync(fd, `${process.pid}\n${what}\n`);
      } finally {
        closeSync(fd);
      }
      return () => {
        // Only remove our own lock (a takeover after a long stop must not be undone).
        if (readHolder(file)?.pid === process.pid) rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readHolder(file);
      if (!holder) continue;
      if (holder.pid && holder.pid !== process.pid && alive(holder.pid))
        throw new FsError('EBUSY', `another scan is running on this home (process ${holder.pid}, scanning ${holder.what || 'locations'}); wait for it to finish or stop it`);
      // Stale. Move it aside rather than delete it: of two processes taking over at once only
      // one rename succeeds, so the other cannot delete the lock the winner just created.
      const aside = `${file}.stale-${process.pid}`;
      try {
        renameSync(file, aside);
      } catch {
        continue;
      }
      const moved = readHolder(aside);
      rmSync(aside, { force: true });
      if (moved && moved.pid !== holder.pid && alive(moved.pid)) {
        // We moved a fresh lock taken over by someone else between our read and rename: that
        // process now runs unlocked, so we back off instead of racing it.
        throw new FsError('EBUSY', `another scan is starting on this home (process ${moved.pid}); try again`);
      }
    }
  }
  throw new FsError('EBUSY', `could not take the scan lock ${file}; remove it if no vdfs scan is running`);
}
