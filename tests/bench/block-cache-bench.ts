// Run: npx tsc -p . && node dist/tests/bench/block-cache-bench.js
// Measures BlockCache: get() hit latency for 1 MiB blocks (memory, disk), miss+store cost, and open() with 10k cached blocks.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BlockCache } from '../../cache/block-cache';
import { openCacheStore } from '../../index/cache-store';
import { blake3Hex } from '../../cache/checksum';

const MiB = 1 << 20;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const ms = (ns: bigint) => Number(ns) / 1e6;

async function main() {
  const root = mkdtempSync(join(tmpdir(), 'cache-bench-'));
  try {
    const N = 64;
    const blocks = Array.from({ length: N }, (_, i) => {
      const d = randomBytes(MiB);
      return { key: `k:${i}`, d, h: blake3Hex(d) };
    });
    let c = await BlockCache.open({ openIndex: openCacheStore, dir: join(root, 'a'), maxBytes: 1024 * MiB, memoryBytes: 256 * MiB });
    const miss: number[] = [];
    for (const b of blocks) {
      const t0 = process.hrtime.bigint();
      await c.get(b.key, async () => b.d, b.h);
      miss.push(ms(process.hrtime.bigint() - t0));
    }
    const mem: number[] = [];
    for (let r = 0; r < 5; r++)
      for (const b of blocks) {
        const t0 = process.hrtime.bigint();
        await c.get(b.key, async () => b.d, b.h);
        mem.push(ms(process.hrtime.bigint() - t0));
      }
    await c.close();
    c = await BlockCache.open({ openIndex: openCacheStore, dir: join(root, 'a'), maxBytes: 1024 * MiB, memoryBytes: 0 });
    const disk: number[] = [];
    for (let r = 0; r < 3; r++)
      for (const b of blocks) {
        const t0 = process.hrtime.bigint();
        await c.get(
          b.key,
          async () => {
            throw new Error('unexpected fetch');
          },
          b.h,
        );
        disk.push(ms(process.hrtime.bigint() - t0));
      }
    await c.close();
    console.log(`1 MiB miss (fetch from memory source + hash + write): median ${median(miss).toFixed(3)} ms`);
    console.log(`1 MiB hit from memory tier: median ${(median(mem) * 1000).toFixed(1)} us`);
    console.log(`1 MiB hit from disk tier (page cache warm, verified): median ${median(disk).toFixed(3)} ms`);

    const dir = join(root, 'b');
    c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 1024 * MiB, memoryBytes: 0 });
    const K = 10_000;
    const t1 = Date.now();
    for (let i = 0; i < K; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => c.put(`h:${i + j}`, randomBytes(4096))));
    console.log(`put ${K} 4 KiB blocks: ${Date.now() - t1} ms`);
    await c.close();
    for (let r = 0; r < 3; r++) {
      const t0 = process.hrtime.bigint();
      c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 1024 * MiB, memoryBytes: 0 });
      const dt = ms(process.hrtime.bigint() - t0);
      console.log(`open() with ${c.stats().blocks} cached blocks: ${dt.toFixed(1)} ms`);
      await c.close();
    }
    c = await BlockCache.open({ openIndex: openCacheStore, dir, maxBytes: 1024 * MiB, memoryBytes: 0 });
    for (let i = 0; i < K; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => c.peek(`h:${i + j}`)));
    const t2 = process.hrtime.bigint();
    await c.close(); // one synchronous SQLite transaction updating the recency of all 10k rows
    console.log(`close() flushing recency of ${K} touched blocks: ${ms(process.hrtime.bigint() - t2).toFixed(1)} ms`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
