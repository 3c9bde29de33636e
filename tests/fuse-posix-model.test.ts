import t from 'tap';
import fc from 'fast-check';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { mountWithOracle } from './helpers/mount';
import { replayOptions } from './helpers/vfs-model';
import { compareSnaps, OTHER_USER, PosixOps, type SnapEntry } from './helpers/posix-ops';

// Random sequences of the calls tools make (utimensat with each flag, chmod, chown, link,
// mkfifo, mknod of sockets and devices, renameat2, truncate, fallocate, copy_file_range, lseek,
// writes through a descriptor held open across the calls after it, ...) run on a local location
// through the mount and on a real directory of the same disk, as root and as another user
// (--allow-other). After every step the answers must match, and so must the whole lstat of
// every entry: type, mode, link count, owner, group, size, content, symlink target, which
// names share an inode, and the times wherever they are defined (see compareTimes).

const NAMES = ['a', 'b', 'd1', 'd1/x', 'd1/y', 'd2', 'd2/z'];
const name = fc.constantFrom(...NAMES);
const ns = fc.integer({ min: 0, max: 999_999_999 });
/** Explicit times far from now (past or future): any such time seen must be exactly the one set. */
const explicitTime = fc.tuple(fc.oneof(fc.integer({ min: 1_000_000_000, max: 1_600_000_000 }), fc.integer({ min: 2_000_000_000, max: 2_100_000_000 })), ns);
const timeArb = fc.oneof(explicitTime, fc.constant('now'), fc.constant('omit'));
const ids = (uid: number) => fc.constantFrom(-1, 0, uid, 1234);
const held = fc.constantFrom(0, 1);

function opArb(uid: number): fc.Arbitrary<Record<string, unknown>> {
  const n = fc.integer({ min: 0, max: 70_000 });
  const seed = fc.integer({ min: 0, max: 255 });
  return fc.oneof(
    fc.record({ op: fc.constant('write'), p: name, n, seed, mode: fc.constantFrom(0o666, 0o600, 0o4755) }),
    fc.record({ op: fc.constant('append'), p: name, n, seed }),
    fc.record({ op: fc.constant('writeAt'), p: name, n, seed, at: fc.integer({ min: 0, max: 200_000 }) }),
    fc.record({ op: fc.constant('read'), p: name }),
    fc.record({ op: fc.constant('mkdir'), p: name, mode: fc.constantFrom(0o755, 0o777, 0o2775, 0o700) }),
    fc.record({ op: fc.constant('rmdir'), p: name }),
    fc.record({ op: fc.constant('unlink'), p: name }),
    fc.record({ op: fc.constant('rename'), p: name, to: name }),
    fc.record({ op: fc.constant('rename2'), p: name, to: name, flags: fc.constantFrom(1, 2) }), // RENAME_NOREPLACE, RENAME_EXCHANGE
    fc.record({ op: fc.constant('truncate'), p: name, size: fc.integer({ min: 0, max: 150_000 }) }),
    fc.record({ op: fc.constant('chmod'), p: name, mode: fc.constantFrom(0o644, 0o600, 0o755, 0o4755, 0o2755, 0o1777, 0o000) }),
    fc.record({ op: fc.constant('chown'), p: name, uid: ids(uid), gid: ids(uid) }),
    fc.record({ op: fc.constant('utimens'), p: name, a: timeArb, m: timeArb }),
    fc.record({ op: fc.constant('link'), p: name, to: name }),
    fc.record({ op: fc.constant('symlink'), p: name, target: fc.constantFrom('a', 'd1/x', '../b') }),
    fc.record({ op: fc.constant('mkfifo'), p: name, mode: fc.constantFrom(0o644, 0o600, 0o666) }),
    // Sockets always; devices as root only (the other user gets EPERM on both sides).
    fc.record({
      op: fc.constant('mknod'),
      p: name,
      kind: fc.constantFrom('sock', 'chr', 'blk', 'fifo'),
      mode: fc.constantFrom(0o644, 0o600),
      major: fc.constantFrom(1, 7, 300),
      minor: fc.constantFrom(3, 0, 70_000),
    }),
    fc.record({ op: fc.constant('fallocate'), p: name, off: fc.integer({ min: 0, max: 100_000 }), len: fc.integer({ min: 1, max: 100_000 }) }),
    fc.record({
      op: fc.constant('copy'),
      p: name,
      to: name,
      off: fc.integer({ min: 0, max: 50_000 }),
      at: fc.integer({ min: 0, max: 50_000 }),
      len: fc.integer({ min: 0, max: 80_000 }),
    }),
    fc.record({ op: fc.constant('seek'), p: name, off: fc.integer({ min: 0, max: 100_000 }), whence: fc.constantFrom('data', 'hole') }),
    fc.record({ op: fc.constant('readdir'), p: fc.constantFrom('', 'd1', 'd2', 'a') }),
    // A descriptor held open across the calls after it (slot h): writes, fstat and close through it.
    fc.record({ op: fc.constant('hold'), p: name, h: held, trunc: fc.boolean() }),
    fc.record({ op: fc.constant('hwrite'), h: held, n, seed, at: fc.integer({ min: 0, max: 100_000 }) }),
    fc.record({ op: fc.constant('hstat'), h: held }),
    fc.record({ op: fc.constant('hclose'), h: held }),
  );
}

const users = [
  { label: 'root', as: undefined, uid: 0, runs: 80 },
  { label: 'another user (nobody) under --allow-other', as: OTHER_USER, uid: OTHER_USER.uid, runs: 80 },
];

for (const u of users)
  t.test(`random POSIX call sequences as ${u.label}: the whole lstat matches a real directory`, async (t) => {
    const { dir, src, mnt, oracle, m } = await mountWithOracle(t, 'm', [], ['--allow-other']);
    t.teardown(() => {
      if (process.env.VDFS_MODEL_TRACE) console.error(m.output());
    });
    chmodSync(dir, 0o755);
    const onMount = new PosixOps(`${mnt}/m`, u.as);
    const onDisk = new PosixOps(oracle, u.as);
    // Snapshots are taken as root: the other user may not read everything it made (mode 000).
    const snapMount = u.as ? new PosixOps(`${mnt}/m`) : onMount;
    const snapDisk = u.as ? new PosixOps(oracle) : onDisk;
    t.teardown(() => {
      for (const p of new Set([onMount, onDisk, snapMount, snapDisk])) p.close();
    });
    for (const side of [onMount, onDisk]) await side.run({ op: 'umask', mask: u.as ? 0o002 : 0o022 });
    let run = 0;
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb(u.uid), { minLength: 10, maxLength: 40, size: 'max' }), async (ops) => {
        run++;
        const base = `r${run}`;
        if (process.env.VDFS_MODEL_TRACE) console.error(`RUN ${base}`);
        // Descriptors the last sequence left open (it ended, or failed while shrinking) are closed.
        for (const h of [0, 1]) for (const side of [onMount, onDisk]) await side.run({ op: 'hclose', h });
        // Each sequence runs in a world-writable directory of root's, like /tmp.
        for (const d of [`${mnt}/m/${base}`, `${oracle}/${base}`]) {
          mkdirSync(d);
          chmodSync(d, 0o1777);
        }
        t.equal(statSync(`${src}/${base}`).mode & 0o7777, 0o1777, 'made through the mount: on the disk');
        let prev: [Record<string, SnapEntry>, Record<string, SnapEntry>] = [{}, {}];
        const done: unknown[] = [];
        for (const o of ops) {
          steps++;
          done.push(o);
          if (process.env.VDFS_MODEL_TRACE) console.error(JSON.stringify(o));
          const op = { ...o, p: `${base}/${o.p as string}`, ...(o.to ? { to: `${base}/${o.to as string}` } : {}) };
          const got = await onMount.run(op);
          const want = await onDisk.run(op);
          if (JSON.stringify(got) !== JSON.stringify(want)) console.error(`DIFF ${JSON.stringify(op)}: mount ${JSON.stringify(got)}, real ${JSON.stringify(want)}`);
          if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${JSON.stringify(op)}: mount ${JSON.stringify(got)}, real ${JSON.stringify(want)}`);
          const snaps = [await snapMount.snap(base), await snapDisk.snap(base)] as [Record<string, SnapEntry>, Record<string, SnapEntry>];
          const diff = compareSnaps(snaps[0], snaps[1], prev[0], prev[1]);
          if (diff) {
            console.error(`DIFF after ${JSON.stringify(op)}: ${diff}`);
            throw new Error(`after ${JSON.stringify(op)}: ${diff}`);
          }
          prev = snaps;
        }
      }),
      { numRuns: u.runs, ...replayOptions() },
    );
    if (!process.env.VDFS_PATH) t.equal(run, u.runs, `${u.runs} random sequences ran`);
    t.ok(steps > u.runs * 10, `${steps} steps compared with the whole lstat after each`);
  });
