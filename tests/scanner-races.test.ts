import t, { type Test } from 'tap';
import { appendFileSync, mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { HashPool } from '../index/hash-pool';
import { scanLocalLocation, type ScanOptions, type ScanProblem } from '../index/scanner';
import { Home } from '../app/home';
import { b3sum, tempDir } from './helpers/cli';
import { indexProblems } from './helpers/index-check';

/** A real home, a real location and a real hash pool, scanned in this process so a test can act between phases. */
function setup(t: Test, workers = 2) {
  const dir = tempDir(t);
  const src = join(dir, 'src');
  mkdirSync(src);
  const { home } = Home.init(join(dir, 'home'), 'races');
  const loc = home.db.transaction(() => home.locations.add({ name: 'main', uri: src, kind: 'local', ownerNode: home.nodeId, readonly: false, options: {} })).immediate();
  const pool = new HashPool(workers);
  t.teardown(async () => {
    await pool.close();
    home.close();
  });
  const problems: ScanProblem[] = [];
  const scan = (opts: ScanOptions = {}) =>
    scanLocalLocation(
      { db: home.db, entries: home.entries, blobs: home.blobs, locations: home.locations, pool, blockSize: home.config.blockSize },
      home.locations.get('main'),
      src,
      { onProblem: (p) => problems.push(p), ...opts },
    );
  return { dir, src, home, loc, scan, problems };
}

t.test('files that vanish or change between listing and hashing', async (t) => {
  // One hashing worker, busy first with 8 files of 256 MiB of holes in the root (listed
  // first): 4 are sent to it, 4 wait in the pool's queue. The listing of sub/ goes before them
  // (the walk comes first), the hash jobs of its small files queue after them, so they are all
  // listed and none hashed yet when the walk ends.
  const { src, home, scan, problems } = setup(t, 1);
  for (let i = 0; i < 8; i++) {
    writeFileSync(join(src, `holes${i}.bin`), '');
    truncateSync(join(src, `holes${i}.bin`), 256 * 1024 ** 2);
  }
  mkdirSync(join(src, 'sub'));
  for (let i = 0; i < 20; i++) writeFileSync(join(src, 'sub', `f${i}.txt`), `file ${i}`);
  let acted = false;
  const s = await scan({
    onProgress: (p) => {
      if (p.phase !== 'hash' || acted) return;
      acted = true; // listed, not hashed yet: delete half, change one
      for (let i = 0; i < 10; i++) rmSync(join(src, 'sub', `f${i}.txt`));
      appendFileSync(join(src, 'sub', 'f15.txt'), ' and more');
    },
  });
  t.ok(acted, 'the scan reported the hash phase');
  t.same(problems, [], 'a vanished file is not a problem');
  t.equal(s.files, 18, 'vanished files are not counted');
  t.equal(s.hashed, 18);
  t.same(
    home.entries
      .children(home.entries.resolve(1, 'sub')!.id)
      .map((e) => e.name)
      .sort(),
    Array.from({ length: 10 }, (_, i) => `f${i + 10}.txt`).sort(),
    'vanished files left the index',
  );
  const e = home.entries.resolve(1, 'sub/f15.txt')!;
  t.equal(e.hash, b3sum(join(src, 'sub', 'f15.txt')), 'the changed file is hashed as it is now');
  t.equal(e.size, 'file 15 and more'.length);
  t.same(indexProblems(home.dir), []);
});

t.test('a file that keeps changing while it is hashed is retried, then reported', async (t) => {
  const { src, home, scan, problems } = setup(t);
  writeFileSync(join(src, 'busy.log'), randomBytes(48 << 20)); // big enough that every hash overlaps a write
  writeFileSync(join(src, 'quiet.txt'), 'quiet');
  // A writer appending every millisecond in its own process: a timer on this event loop missed
  // whole hashes when the machine was loaded (the hash then succeeded, and the test failed).
  const writer = spawn('python3', ['-c', `import time\nwhile True:\n  open(${JSON.stringify(join(src, 'busy.log'))}, 'a').write('line\\n')\n  time.sleep(0.001)`], {
    stdio: 'ignore',
  });
  let s;
  try {
    s = await scan();
  } finally {
    writer.kill('SIGKILL');
    await new Promise((r) => (writer.exitCode !== null || writer.signalCode !== null ? r(null) : writer.once('exit', r)));
  }
  t.equal(s.errors, 1);
  t.equal(problems.length, 1);
  t.match(problems[0], { path: 'busy.log', message: /changed while being hashed 3 times/ });
  t.equal(home.entries.resolve(1, 'busy.log')!.hash, null, 'left unhashed, never a hash of mixed content');
  t.equal(home.entries.resolve(1, 'quiet.txt')!.hash, b3sum(join(src, 'quiet.txt')));
  // Once quiet, the next scan hashes it.
  problems.length = 0;
  const s2 = await scan();
  t.same([s2.errors, s2.hashed], [0, 1]);
  t.equal(home.entries.resolve(1, 'busy.log')!.hash, b3sum(join(src, 'busy.log')));
  t.same(indexProblems(home.dir), []);
});

t.test('a file swapped for a FIFO between listing and hashing is reported, never waited on', async (t) => {
  // Opening a FIFO for reading waits for a writer: a hash worker that did would hang the scan
  // (and every later one) for as long as nobody writes, which any user who can write to the
  // folder decides. Small files (one batch) and a bigger one (a job of its own) both; held back
  // behind files of holes as in the first test, so they are all listed and none hashed yet.
  const { src, home, scan, problems } = setup(t, 1);
  for (let i = 0; i < 8; i++) {
    writeFileSync(join(src, `holes${i}.bin`), '');
    truncateSync(join(src, `holes${i}.bin`), 256 * 1024 ** 2);
  }
  const sub = join(src, 'sub');
  mkdirSync(sub);
  for (let i = 0; i < 6; i++) writeFileSync(join(sub, `f${i}.txt`), `file ${i}`);
  writeFileSync(join(sub, 'big.bin'), randomBytes(256 * 1024));
  let acted = false;
  const s = await scan({
    onProgress: (p) => {
      if (p.phase !== 'hash' || acted) return;
      acted = true;
      for (const name of ['f2.txt', 'big.bin']) {
        rmSync(join(sub, name));
        execFileSync('mkfifo', [join(sub, name)]);
      }
    },
  });
  t.ok(acted, 'the scan reported the hash phase');
  t.same(problems.map((p) => p.path).sort(), ['sub/big.bin', 'sub/f2.txt'], 'each swapped name is reported');
  t.match(problems[0].message, /not a regular file/);
  t.equal(s.hashed, 13);
  for (const i of [0, 1, 3, 4, 5]) t.equal(home.entries.resolve(1, `sub/f${i}.txt`)!.hash, b3sum(join(sub, `f${i}.txt`)));
  // The next scan sees the FIFOs for what they are.
  problems.length = 0;
  await scan();
  t.same(problems, []);
  t.equal(home.entries.resolve(1, 'sub/f2.txt')!.type, 'fifo');
  t.equal(home.entries.resolve(1, 'sub/big.bin')!.type, 'fifo');
  t.same(indexProblems(home.dir), []);
});
