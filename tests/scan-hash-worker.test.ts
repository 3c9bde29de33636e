import t from 'tap';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { HashPool } from '../index/hash-pool';
import { loadNativeFuse } from '../core/native-addon';
import { hashStream } from '../index/remote-scan';
import { T_DIR, T_FILE, T_SYMLINK } from '../index/dir-list';
import { b3sum, tempDir } from './helpers/cli';

// The one BLAKE3 block loop (index/block-hasher.ts) as the local scan's worker thread and the
// remote scan's stream hasher use it, checked against b3sum: whole hash and every block's.
const BS = 64 * 1024;
const SIZES = [0, 1, BS - 1, BS, BS + 1, 3 * BS, 3 * BS + 7];

function b3(bytes: Buffer): string {
  return execFileSync('b3sum', ['--no-names'], { input: bytes, encoding: 'utf8' }).trim();
}

function expectedBlocks(bytes: Buffer): string {
  const out: string[] = [];
  for (let o = 0; o < bytes.length; o += BS) out.push(b3(bytes.subarray(o, o + BS)));
  return out.join('');
}

/** A stream of `bytes` cut at random places (chunks that straddle block boundaries). */
function choppy(bytes: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let o = 0; o < bytes.length;) {
    const n = 1 + Math.floor(Math.random() * BS * 1.5);
    chunks.push(bytes.subarray(o, o + n));
    o += n;
  }
  return Readable.from(chunks);
}

t.test('the worker thread and the stream hasher agree with b3sum, whole and per block', async (t) => {
  const dir = tempDir(t);
  const pool = new HashPool(2);
  t.teardown(() => pool.close());
  for (const size of SIZES) {
    const bytes = randomBytes(size);
    const file = join(dir, `f${size}`);
    writeFileSync(file, bytes);
    const want = b3sum(file);
    const blocks = expectedBlocks(bytes);
    const w = await pool.hashFile(file, BS);
    t.equal(w.hash, want, `worker: hash of ${size} bytes`);
    t.equal(w.blockHashes.toString('hex'), blocks, `worker: block hashes of ${size} bytes`);
    t.equal(w.size, size);
    t.equal(w.changed, false);
    const s = await hashStream(choppy(bytes), BS);
    t.equal(s.hash, want, `stream: hash of ${size} bytes`);
    t.equal(s.blockHashes.toString('hex'), blocks, `stream: block hashes of ${size} bytes`);
  }
  // The worker reuses its hasher: a big file then a small one must not leak state.
  const small = join(dir, 'f1');
  t.equal((await pool.hashFile(small, BS)).hash, b3sum(small), 'a small file after big ones');
});

t.test('the worker refuses what is not a regular file and never follows a symlink', async (t) => {
  const dir = tempDir(t);
  const pool = new HashPool(1);
  t.teardown(() => pool.close());
  writeFileSync(join(dir, 'real'), 'x');
  symlinkSync(join(dir, 'real'), join(dir, 'link'));
  mkdirSync(join(dir, 'sub'));
  await t.rejects(pool.hashFile(join(dir, 'link'), BS), { code: 'ELOOP' });
  await t.rejects(pool.hashFile(join(dir, 'sub'), BS), { code: 'EINVAL' });
  await t.rejects(pool.hashFile(join(dir, 'missing'), BS), { code: 'ENOENT' });
  t.equal((await pool.hashFile(join(dir, 'real'), BS)).hash, b3sum(join(dir, 'real')), 'the pool goes on after errors');
});

t.test('a batch of files in one job: each its hash or its own error, the others unharmed', async (t) => {
  const dir = tempDir(t);
  const pool = new HashPool(1);
  t.teardown(() => pool.close());
  const names = ['a', 'b', 'c', 'd'];
  for (const [i, n] of names.entries()) writeFileSync(join(dir, n), randomBytes(i * 3000 + 1));
  symlinkSync(join(dir, 'a'), join(dir, 'link'));
  mkdirSync(join(dir, 'sub'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  const order = ['a', 'link', 'b', 'missing', 'sub', 'c', 'fifo', 'd'];
  const rs = await pool.hashFiles(
    order.map((n) => join(dir, n)),
    BS,
  );
  t.equal(rs.length, order.length);
  const byName = new Map(order.map((n, i) => [n, rs[i]]));
  for (const n of names) {
    const r = byName.get(n)!;
    if (r instanceof Error) t.fail(`${n}: ${r.message}`);
    else t.same([r.hash, r.blockHashes.toString('hex'), r.changed], [b3sum(join(dir, n)), b3sum(join(dir, n)), false], `${n} as b3sum has it`);
  }
  t.match(byName.get('link'), { code: 'ELOOP' }, 'a symlink is not followed');
  t.match(byName.get('missing'), { code: 'ENOENT' });
  t.match(byName.get('sub'), { code: 'EINVAL' });
  t.match(byName.get('fifo'), { code: 'EINVAL' }, 'a FIFO is refused, not waited on');
});

t.test('adviseWillNeed advises regular files, skips what it cannot open, never waits on a FIFO', (t) => {
  const advise = loadNativeFuse().addon?.adviseWillNeed;
  if (!advise) return (t.fail(`the addon is not built or has no adviseWillNeed: ${loadNativeFuse().error?.message}`), t.end());
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a'), 'x');
  writeFileSync(join(dir, 'b'), randomBytes(100_000));
  symlinkSync(join(dir, 'a'), join(dir, 'link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  t.equal(
    advise(['a', 'missing', 'link', 'b', 'fifo'].map((n) => join(dir, n))),
    2,
    'a and b; not the missing file, the symlink or the FIFO (opened without waiting for a writer, then refused by fadvise)',
  );
  t.equal(advise([]), 0);
  t.throws(() => advise('nope' as unknown as string[]), TypeError);
  t.end();
});

t.test('the same pool lists directories (lstat, no symlink followed)', async (t) => {
  const dir = tempDir(t);
  const pool = new HashPool(1);
  t.teardown(() => pool.close());
  writeFileSync(join(dir, 'a'), 'hello');
  mkdirSync(join(dir, 'd'));
  symlinkSync('/etc/passwd', join(dir, 'l'));
  const l = await pool.list(dir);
  const byName = new Map(l.names.map((n, i) => [n, i]));
  t.same([...byName.keys()].sort(), ['a', 'd', 'l']);
  t.equal(l.types[byName.get('a')!], T_FILE);
  t.equal(l.sizes[byName.get('a')!], 5);
  t.equal(l.types[byName.get('d')!], T_DIR);
  t.equal(l.types[byName.get('l')!], T_SYMLINK);
  await t.rejects(pool.list(join(dir, 'l'), '1'), { code: 'ENOTDIR' }, 'a symlink below the root is not listed');
  await t.rejects(pool.list(join(dir, 'nope')), { code: 'ENOENT' });
});

t.test('with one hashing thread, a listing does not wait behind a long hash', async (t) => {
  const dir = tempDir(t);
  const pool = new HashPool(1, 2); // the daemon's pool: hashes on one core, lists on two
  t.teardown(() => pool.close());
  writeFileSync(join(dir, 'holes.bin'), '');
  truncateSync(join(dir, 'holes.bin'), 1024 ** 3);
  const order: string[] = [];
  const hashes = [0, 1].map(() => pool.hashFile(join(dir, 'holes.bin'), BS).then(() => order.push('hash')));
  const listed = pool.list(dir).then(() => order.push('list'));
  await Promise.all([...hashes, listed]);
  t.equal(order[0], 'list', `the listing came first (${order.join(', ')})`);
});
