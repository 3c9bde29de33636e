import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: ((opts?: { type: 'minor' | 'major' }) => void) | undefined | null = null;

/** The V8 `gc` function, exposed once at run time; undefined when the embedder refuses. */
function v8Gc(): ((opts?: { type: 'minor' | 'major' }) => void) | undefined {
  if (gc === null) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = undefined;
    }
  }
  return gc;
}

/**
 * One full garbage collection, when the process may run one (V8's `gc`, exposed at run time
 * for a fresh context). V8 collects its old space only under allocation pressure, so after a
 * burst (a `find` over 100,000 names allocates a few hundred MB of short-lived objects) a
 * daemon that then goes idle keeps that heap resident for good; a full collection at the start
 * of the idle period gives the empty pages back. `compact` (for idle moments: it moves every
 * live object, a few ms per 10 MB) also empties the pages the survivors are scattered over: a
 * full collection after a walk left 33 MB of old space for 8 MB live, a compacting one frees the
 * rest (the same as V8's own memory-reducing collections, which it runs only under memory
 * pressure); it follows a plain one, and only when that left at least COMPACT_FROM_FREE_BYTES
 * free in the old space's pages. False when not available. Never throws.
 */
export function fullGc(compact = false): boolean {
  const run = v8Gc();
  if (!run) return false;
  try {
    run();
    if (!compact) return true;
    shrinkYoungLater();
    // Compacting moves every live object, and the old space's pages stay resident until the
    // moves are done: right after a 14 GiB stream that made the daemon's peak +15 MB. Only
    // worth it when the plain collection left that much free space in the pages.
    const old = getHeapSpaceStatistics().find((sp) => sp.space_name === 'old_space');
    if (old && old.physical_space_size - old.space_used_size < COMPACT_FROM_FREE_BYTES) return true;
    setFlagsFromString('--compact-on-every-full-gc');
    run();
    idleGcStats.compactions++;
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

/** Free bytes in the old space's pages after a plain full collection from which fullGc(true) also compacts. */
export const COMPACT_FROM_FREE_BYTES = 8 * 1024 * 1024;
/** Compacting collections fullGc(true) ran (for tests and diagnostics). */
export const idleGcStats = { compactions: 0 };

/**
 * How long after an idle-time collection the young generation is given back. V8 shrinks its
 * new space (two semi-spaces, grown to 2 x 8 MiB by start-up and by any burst, and resident
 * from then on: 15 of 16.8 MB resident for 0.1 MB used, 10 s after the start-up rescan) only
 * in a full collection that sees a low allocation rate, which it measures over the last ~5 s
 * of collections. A collection right at the end of a burst sees the burst's rate and keeps
 * it; one more collection this long after, when nothing was allocated meanwhile, shrinks it to
 * 1 MiB (the daemon's idle RSS -15 MB; docs/fuse.md "Idle memory").
 */
export const YOUNG_SHRINK_DELAY_MS = 6000;
/** Old-space growth since the idle-time collection that means a new burst runs: the shrink is left to that burst's end. */
const YOUNG_SHRINK_MAX_GROWTH = 4 * 1024 * 1024;
let youngShrink: NodeJS.Timeout | undefined;
/** Young-generation shrinks run (for tests and diagnostics). */
export const youngShrinkStats = { runs: 0, skipped: 0 };

/** (Re)arms the collection that gives the young generation back (YOUNG_SHRINK_DELAY_MS). Never throws. */
function shrinkYoungLater(): void {
  if (youngShrink) clearTimeout(youngShrink);
  const used = getHeapStatistics().used_heap_size;
  youngShrink = setTimeout(() => {
    youngShrink = undefined;
    if (getHeapStatistics().used_heap_size > used + YOUNG_SHRINK_MAX_GROWTH) {
      youngShrinkStats.skipped++;
      return;
    }
    try {
      v8Gc()?.();
      youngShrinkStats.runs++;
    } catch {
      /* as in fullGc */
    }
  }, YOUNG_SHRINK_DELAY_MS);
  youngShrink.unref();
}

/** Socket bytes streamed between two young-generation collections (streamedBytes). */
export const SCAVENGE_EVERY_BYTES = 4 * 1024 * 1024;
/** Socket bytes streamed between two full collections (streamedBytes). */
export const FULL_GC_EVERY_BYTES = 256 * 1024 * 1024;
/** Bytes lent straight into blocks between two full collections (lentBytes). */
export const LENT_FULL_GC_EVERY_BYTES = 1024 * 1024 * 1024;
let sinceScavenge = 0;
let sinceFull = 0;
let sinceLentFull = 0;
/** Collections run by streamedBytes and lentBytes (for tests and diagnostics). */
export const scavengeStats = { runs: 0, full: 0 };

/**
 * Counts bytes that arrived from a socket and were copied out (into a block, or a WebDAV PUT's
 * staging buffer), and runs one young-generation collection (a scavenge) every SCAVENGE_EVERY_BYTES
 * and a full one every FULL_GC_EVERY_BYTES. Node reads every socket into a fresh 64 KiB buffer that
 * is garbage the moment its bytes are copied out; V8 frees those only at a collection, and
 * streaming allocates so few JS objects that the next one came tens of MB later: the daemon held
 * 30–90 MB of ArrayBuffers at its peak while two streams ran, most of them dead
 * (docs/read-pipeline.md "Memory while streaming"). Paced by bytes, the dead ones stay at a few
 * MiB. The scavenges also promote what is in flight at that moment (requests, promises); with
 * incremental marking off (tuneGcForStreaming) that garbage piled up in the old generation (V8's
 * heap 15 → 30 MB over 2.8 GiB, and every scavenge slower: the daemon's CPU +30%), so a full
 * collection (~10–20 ms here) clears it every FULL_GC_EVERY_BYTES; `fullToo` false leaves these
 * bytes out of that count (a WebDAV PUT: docs/webdav.md). Never throws.
 */
export function streamedBytes(n: number, fullToo = true): void {
  sinceScavenge += n;
  if (fullToo) sinceFull += n;
  if (sinceScavenge < SCAVENGE_EVERY_BYTES) return;
  sinceScavenge = 0;
  if (sinceFull >= FULL_GC_EVERY_BYTES) {
    sinceFull = 0;
    return collectFull();
  }
  const run = v8Gc();
  if (!run) return;
  try {
    run({ type: 'minor' });
    scavengeStats.runs++;
  } catch {
    // an embedder without the minor option: the dead buffers wait for V8's own collection
  }
}

/** One full collection paced by streamed or lent bytes. Never throws. */
function collectFull(): void {
  try {
    const run = v8Gc();
    if (!run) return;
    run();
    scavengeStats.full++;
  } catch {
    /* as in fullGc */
  }
}

/**
 * Counts bytes a lending source wrote straight into blocks (an S3, Drive or peer body: no
 * chunk, so no garbage buffers), and runs a full collection every LENT_FULL_GC_EVERY_BYTES. The
 * per-block objects of such a stream (requests, block runs, promises) still reach the old
 * generation, which with incremental marking off (tuneGcForStreaming) V8 collects only at its
 * limit: streaming 10 GiB from S3 through the mount and 4 GiB through WebDAV at once took the
 * daemon from 139 to 160 MB, with two full collections in all, both at start-up
 * (docs/read-pipeline.md "Memory while streaming"). Never throws.
 */
export function lentBytes(n: number): void {
  sinceLentFull += n;
  if (sinceLentFull < LENT_FULL_GC_EVERY_BYTES) return;
  sinceLentFull = 0;
  collectFull();
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
 * already runs atomic ones itself (fullGc).
 * It also stops the young generation from growing past the size it has now (a few MiB after
 * start): under streaming it grew to two 16 MiB semi-spaces, resident, for young objects that
 * fit in 1 MiB (~10 MB of the daemon's peak; docs/read-pipeline.md "Memory while streaming").
 * Process-wide, once; a worker thread's start undoes it, so WorkerPool calls
 * reapplyGcTuning for each worker it starts. Never throws.
 */
export function tuneGcForStreaming(): void {
  if (tuned) return;
  tuned = true;
  setTuningFlags();
}

/**
 * Sets tuneGcForStreaming's flags again, if it ran. Node puts V8's flags back to their start-up
 * values when a thread starts (seen on Node 20: the daemon's young generation grew to two 16 MiB
 * semi-spaces again once the scan's hash workers had started, 16 MB more at its peak), so
 * WorkerPool calls this as each worker comes online and at its first answer. Never throws.
 */
export function reapplyGcTuning(): void {
  if (tuned) setTuningFlags();
}

function setTuningFlags(): void {
  try {
    setFlagsFromString('--no-incremental-marking');
    setFlagsFromString('--semi-space-growth-factor=1');
  } catch {
    // an embedder that refuses run-time flags keeps V8's defaults
  }
}
