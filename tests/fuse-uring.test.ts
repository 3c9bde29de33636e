import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum } from './helpers/cli';
import { DIRECT_READER, sh, startMount, indexedLocation } from './helpers/mount';

// FUSE over io_uring (Linux >= 6.14): the kernel offers it only while the fuse module's
// enable_uring is on. .ci/setup turns it on; this test does too (it runs as root), so that it
// always tests the rings and fails, rather than skips, where the kernel has none.
const ENABLE = '/sys/module/fuse/parameters/enable_uring';

interface FuseStats {
  nativeReads: number;
  jsRequests: number;
  ringQueues: number;
  ringRequests: number;
  uring: number;
}

function fuseStats(mnt: string): FuseStats {
  return JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as FuseStats;
}

/** CPUs the kernel keeps a FUSE queue for (num_possible_cpus): "0-N" in /sys. */
function possibleCpus(): number {
  const [lo, hi] = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split('-').map(Number);
  return (hi ?? lo) - lo + 1;
}

t.test('with fuse.enable_uring on, requests come through one io_uring queue per CPU, and what the addon and JS answer through them is byte-exact', async (t) => {
  t.ok(existsSync(ENABLE), `${ENABLE} exists (Linux >= 6.14 with FUSE over io_uring)`);
  writeFileSync(ENABLE, 'Y');
  const data = randomBytes(8 * 1024 * 1024);
  const { home, src, mnt } = indexedLocation(t, 'l', { 'r.bin': data });
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const cpus = possibleCpus();
  const s0 = fuseStats(mnt);
  t.equal(s0.uring, 1, 'INIT negotiated FUSE over io_uring');
  t.equal(s0.ringQueues, cpus, `a queue per possible CPU (${cpus})`);

  // Random reads from each CPU in turn: each CPU's requests go to its own queue, answered there by pread.
  const offsets = Array.from({ length: 64 }, () => Math.floor(Math.random() * (data.length / 4096)) * 4096);
  const want = Buffer.concat(offsets.map((o) => data.subarray(o, o + 4096)));
  const onCpu = (s: FuseStats, cpu: number) => (s as unknown as Record<string, number>)[`ring.cpu${cpu}`] ?? 0;
  for (let cpu = 0; cpu < cpus; cpu++) {
    const before = fuseStats(mnt);
    const r = spawnSync('taskset', ['-c', String(cpu), 'python3', '-c', DIRECT_READER, join(mnt, 'l', 'r.bin'), offsets.join(','), join(src, 'r.bin')], {
      maxBuffer: 1 << 24,
      timeout: 30_000,
    });
    t.equal(r.status, 0, r.stderr?.toString());
    t.ok(r.stdout.equals(want), `byte-exact, read from CPU ${cpu}`);
    // The kernel queues a request on the ring of the CPU its caller runs on.
    const after = fuseStats(mnt);
    t.ok(onCpu(after, cpu) - onCpu(before, cpu) >= offsets.length, `read from CPU ${cpu}: served by queue ${cpu} (${onCpu(after, cpu) - onCpu(before, cpu)} requests)`);
  }
  const s1 = fuseStats(mnt);
  t.ok(s1.ringRequests - s0.ringRequests >= offsets.length * cpus, `the reads came through the rings (${s1.ringRequests - s0.ringRequests} ring requests)`);
  t.ok(s1.nativeReads - s0.nativeReads >= offsets.length * cpus, `and were answered natively (${s1.nativeReads - s0.nativeReads})`);
  t.equal(sh('b3sum', ['--no-names', join(mnt, 'l', 'r.bin')]).stdout.trim(), b3sum(join(src, 'r.bin')), 'a whole read (1 MiB READs through the rings) is b3sum-exact');

  // Requests JS answers (create, mkdir, rename, listing, release...) are committed through their ring entry too.
  const payload = randomBytes(3 * 1024 * 1024 + 17);
  mkdirSync(join(mnt, 'l', 'd'));
  writeFileSync(join(mnt, 'l', 'd', 'w.bin'), payload);
  renameSync(join(mnt, 'l', 'd', 'w.bin'), join(mnt, 'l', 'd', 'moved.bin'));
  t.same(readdirSync(join(mnt, 'l', 'd')), ['moved.bin'], 'listed through the mount');
  t.ok(readFileSync(join(src, 'd', 'moved.bin')).equals(payload), 'written and renamed through the mount, on the disk');
  t.equal(sh('b3sum', ['--no-names', join(mnt, 'l', 'd', 'moved.bin')]).stdout.trim(), b3sum(join(src, 'd', 'moved.bin')), 'b3sum-exact read back');
  const s2 = fuseStats(mnt);
  t.ok(s2.jsRequests > s1.jsRequests, `JS answered requests (${s2.jsRequests - s1.jsRequests})`);
  // mkdir, create, write, rename, listing, open, read, release: had a JS reply to a ring request gone to /dev/fuse, the kernel would not have taken it and the call would hang.
  t.ok(s2.ringRequests - s1.ringRequests >= 8, `and they came through the rings (${s2.ringRequests - s1.ringRequests} ring requests)`);
  t.equal(await m.stop(), 0, 'SIGTERM: clean exit with the rings in use');
});
