import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { swallowedCounts } from '../core/swallowed';

const FILE = 'daemon-errors.json';
const EVERY_MS = 2000;

/**
 * Publishes this process's counts of caught-and-handled errors (core/swallowed) in the home
 * every two seconds when they changed, for `vdfs status --json` (`errors.swallowed`). The
 * write is atomic (temp file + rename). Returns `stop`, which writes a last time. Never throws.
 */
export function publishSwallowed(home: string): () => void {
  let last = '';
  const write = () => {
    const counts = swallowedCounts();
    const text = JSON.stringify({ pid: process.pid, counts });
    if (text === last) return;
    try {
      const tmp = join(home, `.${FILE}.${process.pid}`);
      writeFileSync(tmp, text, { mode: 0o600 });
      renameSync(tmp, join(home, FILE));
      last = text;
    } catch {
      // The home is read-only or gone: there is nowhere to publish to; the logs still have each one.
    }
  };
  write();
  const timer = setInterval(write, EVERY_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    write();
  };
}

/**
 * What the last daemon of this home published: errors it caught, logged and went on from,
 * by what failed (`{}`: none). Null when no daemon has published. Never throws.
 */
export function daemonSwallowed(home: string): { pid: number; counts: Record<string, number> } | null {
  try {
    const v = JSON.parse(readFileSync(join(home, FILE), 'utf8')) as { pid?: unknown; counts?: unknown };
    if (typeof v.pid !== 'number' || typeof v.counts !== 'object' || v.counts === null) return null;
    return { pid: v.pid, counts: v.counts as Record<string, number> };
  } catch {
    return null; // none published yet (or a half-written file from an older version)
  }
}
