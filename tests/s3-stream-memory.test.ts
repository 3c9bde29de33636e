import t from 'tap';
import { blockPool } from '../cache/block-pool';
import { fullGc, scavengeStats, tuneGcForStreaming } from '../core/idle-gc';
import { s3StreamReader } from './helpers/s3-stream-reader';

// node:http read every socket into a fresh 64 KiB buffer, garbage as soon as window-stream copied
// it into a block; V8 freed such buffers only at a collection, so the daemon carried tens of MB
// of them while it streamed (docs/read-pipeline.md "Memory while streaming"): with 3c8f6a8's
// code 15–16 MiB on average and 30–32 MiB at most; with a young-generation collection every few
// MiB streamed (core/idle-gc.ts streamedBytes) ~4 MiB and 8–14 MiB. S3's bodies now go off the
// socket straight into the blocks (core/http-get.ts): no buffer per read, so no collection is
// needed at all. Streamed here the way a FUSE reader does, with the daemon's GC settings; the
// bound is on the ArrayBuffer bytes beyond the baseline and what the block pool holds, sampled
// every few ms.

const MiB = 1 << 20;
const SIZE = 128 * MiB;

t.test('an object streams into the blocks without a buffer per socket read', async (t) => {
  tuneGcForStreaming();
  const { data, cache, reader: r } = await s3StreamReader(t, SIZE, 512 * MiB);
  const buf = Buffer.alloc(MiB);
  // the pool's slab and the client's connection exist before the baseline
  await r.readInto(0, buf);
  await cache.settled();
  fullGc();
  const base = process.memoryUsage().arrayBuffers;
  let worst = 0;
  let sum = 0;
  let samples = 0;
  const sample = () => {
    const held = (blockPool.stats.live - blockPool.stats.slabLive) * MiB; // pooled blocks outside the slab
    const extra = process.memoryUsage().arrayBuffers - base - held;
    worst = Math.max(worst, extra);
    sum += extra;
    samples++;
  };
  const timer = setInterval(sample, 2);
  const runs = scavengeStats.runs;
  let same = true;
  try {
    for (let o = MiB; o < SIZE; o += MiB) {
      const n = await r.readInto(o, buf);
      same &&= n === MiB && buf.equals(data.subarray(o, o + MiB));
      sample();
    }
  } finally {
    clearInterval(timer);
    r.close();
    await cache.settled();
  }
  t.ok(same, 'every byte read is the object');
  t.equal(scavengeStats.runs - runs, 0, 'no collection paced by streamed chunks: the body was lent, not read in chunks');
  const mean = sum / samples;
  t.ok(
    mean < 10 * MiB,
    `${(mean / MiB).toFixed(1)} MiB of ArrayBuffers beyond the baseline and the pool's blocks on average over ${samples} samples (15–16 with node:http's buffer per read, unpaced)`,
  );
  t.ok(worst < 24 * MiB, `at most ${(worst / MiB).toFixed(1)} MiB (30–32 with node:http's buffer per read, unpaced)`);
});
