import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FsError } from '../providers/fs-error';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive lock file per location scan, holding the owner's pid. A lock whose owner
 * died is taken over. Throws EBUSY when a live process holds it.
 */
export function acquireScanLock(homeDir: string, location: string): () => void {
  const dir = join(homeDir, 'locks');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `scan-${location}.lock`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim() || 0);
      if (pid && pid !== process.pid && alive(pid))
        throw new FsError('EBUSY', `location ${location} is being scanned by process ${pid}; wait for it to finish`);
      rmSync(file, { force: true }); // stale: its owner is gone
    }
  }
  throw new FsError('EBUSY', `could not lock location ${location} for scanning`);
}
