import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined | null = null;

/**
 * One full garbage collection, when the process may run one (V8's `gc`, exposed at run time
 * for a fresh context). V8 collects its old space only under allocation pressure, so after a
 * burst (a `find` over 100,000 names allocates a few hundred MB of short-lived objects) a
 * daemon that then goes idle keeps that heap resident for good; a full collection at the start
 * of the idle period gives the empty pages back. `compact` (for idle moments: it moves every
 * live object, a few ms per 10 MB) also empties the pages the survivors are scattered over: a
 * full collection after a walk left 33 MB of old space for 8 MB live, a compacting one frees the
 * rest (the same as V8's own memory-reducing collections, which it runs only under memory
 * pressure). False when not available. Never throws.
 */
export function fullGc(compact = false): boolean {
  if (gc === null) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = undefined;
    }
  }
  if (!gc) return false;
  try {
    if (compact) setFlagsFromString('--compact-on-every-full-gc');
    gc();
    return true;
  } catch {
    return false;
  } finally {
    try {
      if (compact) setFlagsFromString('--no-compact-on-every-full-gc');
    } catch {
      /* as above */
    }
  }
}

let tuned = false;

/**
 * Makes V8 collect its old space in one pause when the heap reaches its limit, instead of
 * starting incremental marking early. Streaming makes a lot of short-lived external memory
 * (every socket read is a fresh 64 KiB buffer, freed by the next scavenge): V8 counts it
 * against the old generation's headroom and, with a small heap like the daemon's (~15 MB),
 * started a new round of incremental (and concurrent, on every core) marking every ~8 MB
 * streamed: ~25 full collections per 256 MiB, 40% of the daemon's CPU during a cold `dd`
 * (docs/read-pipeline.md). A full collection of a heap this size takes a few ms; the daemon
 * already runs atomic ones itself (fullGc). Process-wide, once; never throws.
 */
export function tuneGcForStreaming(): void {
  if (tuned) return;
  tuned = true;
  try {
    setFlagsFromString('--no-incremental-marking');
  } catch {
    // an embedder that refuses run-time flags keeps V8's defaults
  }
}
