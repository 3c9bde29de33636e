import t from 'tap';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { tuneGcForStreaming } from '../core/idle-gc';
import { s3StreamReader } from './helpers/s3-stream-reader';

// The daemon turns V8's incremental marking off (core/idle-gc.ts): streaming makes a fresh
// 64 KiB socket buffer per read, which V8 counted against a small heap's headroom, starting a
// full marking round every few MB streamed (~25 full collections and 40% of the daemon's CPU
// per 256 MiB). Streamed here the way a FUSE reader does, with the daemon's setting
// (VDFS_TEST_NO_GC_TUNING=1 leaves V8's default: 8 full collections here instead of 0).

const MiB = 1 << 20;
const SIZE = 96 * MiB;

t.test('streaming an object does not run a full garbage collection every few MB', async (t) => {
  if (process.env.VDFS_TEST_NO_GC_TUNING !== '1') tuneGcForStreaming();
  const { data, cache, reader: r } = await s3StreamReader(t, SIZE, 256 * MiB);
  let major = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
  });
  obs.observe({ entryTypes: ['gc'] });
  const buf = Buffer.alloc(MiB);
  let same = true;
  for (let o = 0; o < SIZE; o += MiB) {
    const n = await r.readInto(o, buf);
    same &&= n === MiB && buf.equals(data.subarray(o, o + MiB));
  }
  r.close();
  await cache.settled();
  // the observer hears of collections a tick later
  await new Promise((res) => setImmediate(res));
  obs.disconnect();
  t.ok(same, 'every byte read is the object');
  t.ok(major <= 3, `${major} full collections while ${SIZE / MiB} MiB streamed`);
});
