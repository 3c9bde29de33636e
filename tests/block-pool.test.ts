import t from 'tap';
import { BlockPool } from '../cache/block-pool';

// The reference counts that decide when a streamed block's buffer may be used again
// (cache/block-pool.ts). A buffer reused while someone still reads it would hand one block's
// bytes to another: these check that it never is, and that it is reused once it may be.

const KiB = 1024;

t.test('a buffer is reused only after its last reference is given back', async (t) => {
  const pool = new BlockPool(64 * KiB);
  const a = pool.take(16 * KiB, 16 * KiB);
  a.fill(1);
  pool.ref(a); // a second holder (the cache's write-behind queue)
  pool.unref(a);
  t.ok(pool.pooled(a), 'still held by its other holder');
  const b = pool.take(16 * KiB, 16 * KiB);
  t.not(b.buffer, a.buffer, 'a held buffer is not handed out again');
  t.ok(
    a.every((x) => x === 1),
    'its bytes are untouched',
  );
  pool.unref(a);
  t.notOk(pool.pooled(a), 'the last reference is gone');
  t.equal(pool.idleBytes, 16 * KiB, 'it waits in the free list');
  const c = pool.take(10 * KiB, 16 * KiB);
  t.equal(c.buffer, a.buffer, 'and is used again (a short last block of the same block size)');
  t.equal(c.length, 10 * KiB);
  t.equal(pool.stats.reused, 1);
  t.equal(pool.stats.live, 2, 'b and c are held');
  pool.unref(b);
  pool.unref(c);
  t.equal(pool.stats.live, 0);
});

t.test('extra unrefs, foreign buffers and odd sizes are ignored; the free list is bounded', async (t) => {
  const pool = new BlockPool(32 * KiB);
  const a = pool.take(16 * KiB, 16 * KiB);
  pool.unref(a);
  pool.unref(a); // a holder giving back twice must not free it for two takers
  const b = pool.take(16 * KiB, 16 * KiB);
  const c = pool.take(16 * KiB, 16 * KiB);
  t.not(b.buffer, c.buffer, 'two takers never share a buffer');
  const foreign = Buffer.alloc(16 * KiB);
  pool.ref(foreign);
  pool.unref(foreign);
  t.notOk(pool.pooled(foreign), 'a buffer not from the pool is not tracked');
  t.notOk(pool.pooled(pool.take(64 * KiB, 64 * KiB)), 'a block larger than the pool is a plain buffer');
  t.equal(pool.take(0, 16 * KiB).length, 0);
  const d = pool.take(16 * KiB, 16 * KiB);
  for (const x of [b, c, d]) pool.unref(x);
  t.equal(pool.idleBytes, 32 * KiB, 'the third freed buffer is left to the GC: idle bytes stay within the bound');
});

t.test('blocks of the slab size are slots of one slab: never shared while held, the lowest free one reused, bounded', async (t) => {
  const pool = new BlockPool(32 * KiB, { blockSize: 16 * KiB, slots: 3 });
  const a = pool.take(16 * KiB, 16 * KiB);
  const b = pool.take(10 * KiB, 16 * KiB); // a short last block still takes a whole slot
  const c = pool.take(16 * KiB, 16 * KiB);
  t.equal(a.buffer, b.buffer, 'one slab behind the slots');
  t.equal(b.byteOffset - a.byteOffset, 16 * KiB, 'the second slot follows the first');
  t.equal(c.byteOffset - a.byteOffset, 32 * KiB);
  a.fill(1);
  b.fill(2);
  c.fill(3);
  t.ok(a.every((x) => x === 1) && b.every((x) => x === 2), 'slots do not overlap');
  t.equal(pool.stats.slabLive, 3);
  const d = pool.take(16 * KiB, 16 * KiB);
  t.not(d.buffer, a.buffer, 'every slot held: the block comes from outside the slab');
  t.equal(pool.stats.overflow, 1);
  pool.ref(b.subarray(100, 200)); // a holder given a view of the block
  pool.unref(b);
  t.ok(pool.pooled(b), 'still held through the view');
  t.ok(pool.pooled(b.subarray(5)), 'a view of a held slot counts as held');
  pool.unref(a);
  const e = pool.take(16 * KiB, 16 * KiB);
  t.equal(e.byteOffset, a.byteOffset, "the lowest free slot is used again (a's), not b's, still held");
  t.ok(
    b.every((x) => x === 2),
    "b's bytes are untouched",
  );
  pool.unref(b);
  pool.unref(b); // a second give-back must not free the slot for two takers
  const f = pool.take(16 * KiB, 16 * KiB);
  const g = pool.take(16 * KiB, 16 * KiB);
  t.equal(f.byteOffset, b.byteOffset, 'b is free again');
  t.not(g.buffer, a.buffer, 'and only once: the next take overflows');
  t.equal(pool.slabResidentBytes, 48 * KiB, 'the slab never holds more than its slots');
  for (const x of [c, d, e, f, g]) pool.unref(x);
  t.equal(pool.stats.live, 0, 'every block given back');
  t.equal(pool.stats.slabLive, 0);
  t.equal(pool.idleBytes, 48 * KiB, 'idle: the three slots only (blocks taken beyond the slab are not kept, so they never stay resident beside it)');
  const h = pool.take(16 * KiB, 16 * KiB);
  t.equal(h.buffer, a.buffer, 'the next take is a slot again');
  pool.unref(h);
});

// A fresh daemon's first blocks paid ~8 ms per new MiB of 4 KiB pages on this project's VMs
// (docs/read-pipeline.md, "Fresh memory"): the slab is one mapping advised for huge pages.
t.test('the slab is one mapping in huge pages (the native addon), zeroed, its slots inside it', async (t) => {
  const MiB = 1024 * KiB;
  const { readFileSync } = await import('node:fs');
  const { loadNativeFuse } = await import('../core/native-addon');
  t.equal(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').includes('[never]'), false, 'this machine has transparent huge pages');
  t.equal(typeof loadNativeFuse().addon?.hugePageBuffer, 'function', 'the addon is built with hugePageBuffer');
  const hugeKiB = (): number => [...readFileSync('/proc/self/smaps', 'utf8').matchAll(/^AnonHugePages:\s+(\d+) kB/gm)].reduce((s, m) => s + Number(m[1]), 0);
  const before = hugeKiB();
  const pool = new BlockPool(0, { blockSize: MiB, slots: 8 });
  const blocks = Array.from({ length: 4 }, () => pool.take(MiB, MiB));
  t.ok(
    blocks.every((b) => b.every((x) => x === 0)),
    'fresh slots read as zeros (an anonymous mapping)',
  );
  for (const [i, b] of blocks.entries()) b.fill(i + 1);
  t.ok(
    blocks.every((b, i) => b.every((x) => x === i + 1)),
    'slots do not overlap',
  );
  t.ok(hugeKiB() - before >= 2048, `the 4 MiB used are in huge pages (${hugeKiB() - before} KiB more AnonHugePages)`);
  for (const b of blocks) pool.unref(b);
});
