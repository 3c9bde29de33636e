import t, { type Test } from 'tap';
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { b3sum, tempDir, until, vdfs, vdfsOk } from './helpers/cli';
import { mountWithOracle, sh, startMount } from './helpers/mount';
import { startS3Server } from './helpers/s3-server';

// What `tar x` does to every file it writes: create, write, futimens, fchown, fchmod on the open
// descriptor, then close; checked from a second process while the file is still open, and after.
const WRITER = `
import os, sys, json
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b'x' * 5000)
os.utime(fd, ns=(1_400_000_000_123_456_789, 1_500_000_000_987_654_321))
os.fchown(fd, 1234, 5678)
os.fchmod(fd, 0o640)
st = os.fstat(fd)
sys.stdout.write(json.dumps({'open': [str(v) for v in [st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns, st.st_size]]}) + '\\n')
sys.stdout.flush()
sys.stdin.readline()
os.close(fd)
`;

const view = (st: { mode: number | bigint; uid: number | bigint; gid: number | bigint; mtimeNs: bigint; atimeNs: bigint; size: number | bigint }) => [
  Number(st.mode) & 0o7777,
  Number(st.uid),
  Number(st.gid),
  st.mtimeNs.toString(),
  st.atimeNs.toString(),
  Number(st.size),
];

t.test('fchmod, fchown and futimens on a file open for writing (tar x) land on the disk, show through the mount while open, and reach the index on close', async (t) => {
  const { home, src, mnt } = await mountWithOracle(t, 'd');
  const { spawn } = await import('node:child_process');
  const file = join(mnt, 'd', 'f.c');
  const before = opCounts(mnt);
  const py = spawn('python3', ['-c', WRITER, file], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString()));
  py.stderr.on('data', (d: Buffer) => (err += d.toString()));
  t.ok(await until(() => out.includes('\n') || py.exitCode !== null, 20_000), `the writer ran: ${err}`);
  const want = [0o640, 1234, 5678, '1500000000987654321', '1400000000123456789', 5000];
  const seen = JSON.parse(out.split('\n')[0]) as { open: string[] };
  t.same(seen.open, want.map(String), 'fstat of the open file: mode, owner, exact times and size');
  // Still open: the backing file has them, and another process's stat through the mount too.
  t.same(view(statSync(join(src, 'f.c'), { bigint: true })).map(String), want.map(String), 'the backing file has them while open');
  t.same(view(statSync(file, { bigint: true })).map(String), want.map(String), 'stat through the mount while open');
  // A listing while open is built in JS from what the addon noted after each SETATTR (its fstat).
  const lsOpen = sh('ls', ['-ln', '--time-style=+%s', join(mnt, 'd')]);
  t.match(lsOpen.stdout, /-rw-r----- 1 1234 5678 5000 1500000000 f\.c/, 'ls -l through the mount while open shows mode, owner, size and mtime');
  py.stdin.end('\n');
  t.ok(await until(() => py.exitCode !== null, 10_000), 'the writer closed the file');
  t.equal(py.exitCode, 0, err);
  // The three SETATTRs, the GETATTRs of the open file and its FLUSH were answered in the addon
  // through the open descriptor (no round trip to JS for them).
  const after = opCounts(mnt);
  const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  t.ok(delta('native.setattr') >= 3, `SETATTRs answered natively: ${delta('native.setattr')}`);
  t.equal(delta('op.setattr'), delta('native.setattr'), 'no SETATTR of the open file reached JS');
  t.ok(delta('native.flush') >= 1, `its FLUSH answered natively: ${delta('native.flush')}`);
  t.equal(delta('op.flush'), delta('native.flush'), 'no FLUSH reached JS');
  // The index follows on close: its mtime (exactly) and size.
  const indexed = () => JSON.parse(vdfsOk(home, ['stat', '--json', '/d/f.c']).stdout) as { size: number; mtime: string; hash: string | null };
  t.ok(await until(() => indexed().hash !== null, 20_000), 'the closed file is hashed');
  t.same([indexed().size, indexed().mtime], [5000, new Date(1_500_000_000_987).toISOString()], 'the index has the size and mtime set through the descriptor');
  t.same(view(statSync(file, { bigint: true })).map(String), want.map(String), 'stat through the mount after close');
  // An ls -l through the mount, from the index and the disk's stats (a fresh listing).
  const ls = sh('ls', ['-ln', '--time-style=+%s', join(mnt, 'd')]);
  t.match(ls.stdout, /-rw-r----- 1 1234 5678 5000 1500000000 f\.c/, 'ls -l through the mount shows mode, owner, size and mtime');
});

// What `rsync -a` does to each file after writing it: open it read-only and fchmod it (and, as
// root, fchown it), then close. `replace`: the file is replaced on the disk first (written
// elsewhere, renamed over it), while the descriptor stays open on the old one.
const READ_ONLY_META = `
import os, sys, json
p, disk, replace = sys.argv[1], sys.argv[2], sys.argv[3] == '1'
fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
if replace:
    with open(disk + '.new', 'wb') as f:
        f.write(b'new')
    os.rename(disk + '.new', disk)
os.fchmod(fd, 0o604)
os.fchown(fd, 4321, 8765)
st = os.fstat(fd)
os.close(fd)
print(json.dumps([st.st_mode & 0o7777, st.st_uid, st.st_gid]))
`;

t.test('owner and mode set through a read-only descriptor (rsync -a) are answered natively, land on the disk and reach the index', async (t) => {
  const { src, mnt } = await mountWithOracle(t, 'd');
  const file = join(mnt, 'd', 'g.c');
  writeFileSync(file, 'hello');
  const before = opCounts(mnt);
  const r = sh('python3', ['-c', READ_ONLY_META, file, join(src, 'g.c'), '0']);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), [0o604, 4321, 8765], 'fstat through the mount after the changes');
  const disk = statSync(join(src, 'g.c'));
  t.same([disk.mode & 0o7777, disk.uid, disk.gid], [0o604, 4321, 8765], 'the backing file has them');
  const after = opCounts(mnt);
  const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  t.equal(delta('native.setattr'), 2, 'both SETATTRs answered in the addon');
  t.equal(delta('op.setattr'), 2, 'and none reached JS');
  // A fresh listing is built in JS from the index and the disk's stats.
  const ls = sh('ls', ['-ln', join(mnt, 'd')]);
  t.match(ls.stdout, /-rw----r-- 1 4321 8765 5 .* g\.c/, 'ls -l through the mount shows the new mode and owner');
});

t.test('owner and mode through a read-only descriptor of a file replaced on the disk since go to the name, as before', async (t) => {
  const { src, mnt } = await mountWithOracle(t, 'd');
  const file = join(mnt, 'd', 'h.c');
  writeFileSync(file, 'hello');
  const r = sh('python3', ['-c', READ_ONLY_META, file, join(src, 'h.c'), '1']);
  t.equal(r.code, 0, r.stderr);
  // The descriptor's file is unlinked: the addon leaves it to JS, which changes the file at the name.
  const disk = statSync(join(src, 'h.c'));
  t.same([disk.mode & 0o7777, disk.uid, disk.gid], [0o604, 4321, 8765], 'the file now at the name has them');
  t.equal(readFileSync(join(src, 'h.c'), 'utf8'), 'new', 'and it is the new file');
});

/** Requests by opcode since the mount: `op.*` read from the device, `native.*` of them answered in the addon. */
function opCounts(mnt: string): Record<string, number | undefined> {
  return JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as Record<string, number | undefined>;
}

/** The addon's counters (getfattr user.vdfs.fuse on the mount root). */
function fuseStats(mnt: string): { nativeReads: number; jsReads: number } {
  const st = JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as Record<string, number | undefined>;
  return { nativeReads: st.nativeReads ?? 0, jsReads: (st['op.read'] ?? 0) - (st['native.read'] ?? 0) };
}

t.test('content read through the block cache is read back natively from its verified block files; a block file gone falls back to JS and is fetched again', async (t) => {
  const { home, src, mnt } = await mountWithOracle(t, 'd');
  writeFileSync(join(src, 'big.bin'), randomBytes(5 * 1024 * 1024 + 12345));
  const want = sh('b3sum', ['--no-names', join(src, 'big.bin')]).stdout.trim();
  // The daemon's watcher indexes (and hashes) the new file.
  const hashed = () => (JSON.parse(vdfs(home, ['stat', '--json', '/d/big.bin']).stdout || '{}') as { hash?: string }).hash === want;
  t.ok(await until(hashed, 30_000), 'the new file is indexed with its hash');
  const byHash = join(mnt, '.vdfs', 'by-hash', want);
  // O_DIRECT: every read reaches the daemon (none answered from the kernel's page cache).
  const readDirect = () => sh('bash', ['-c', `dd if=${byHash} iflag=direct bs=256k status=none | b3sum --no-names`]).stdout.trim();
  t.equal(readDirect(), want, 'first read (fills the block cache) has the right bytes');
  const blocks = () => sh('bash', ['-c', `find ${join(home, 'cache', 'blocks')} -type f | wc -l`]).stdout.trim();
  t.ok(await until(() => blocks() === '6', 20_000), 'all 6 blocks are in the cache on disk');
  const before = fuseStats(mnt);
  t.equal(readDirect(), want, 'second read has the right bytes');
  const after = fuseStats(mnt);
  // 5 MiB + a bit in 256 KiB reads: 21 READs, every one answered in the addon.
  t.ok(after.nativeReads - before.nativeReads >= 21, `the second read was answered natively (${after.nativeReads - before.nativeReads} native reads)`);
  // Lookups, getattrs and the open reach JS too (how many depends on the kernel's caches): READs must not.
  t.equal(after.jsReads - before.jsReads, 0, 'no READ reached JS');
  // The cache's files removed behind its back: no wrong or short bytes, the blocks come again from the replica.
  t.equal(sh('bash', ['-c', `rm -f ${join(home, 'cache', 'blocks')}/*/*`]).code, 0);
  t.equal(readDirect(), want, 'with the block files gone the read still has the right bytes');
  t.equal(readDirect(), want, 'and again');
});

t.test('a bucket object not hashed yet is read back natively from its verified block files; a new version is never served from the old one', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  const v1 = randomBytes(3 * 1024 * 1024 + 777);
  await s3.put('n/obj.bin', v1);
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const mnt = join(dir, 'mnt');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/n/')]);
  vdfsOk(home, ['scan']);
  t.notOk((JSON.parse(vdfsOk(home, ['stat', '--json', '/cloud/obj.bin']).stdout) as { hash?: string | null }).hash, 'indexed from the listing, not hashed');
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const f = join(mnt, 'cloud', 'obj.bin');
  // The oracle: b3sum of the bytes put in the bucket, written to a local file.
  const b3 = (b: Buffer) => {
    writeFileSync(join(dir, 'want.bin'), b);
    return b3sum(join(dir, 'want.bin'));
  };
  const readDirect = () => sh('bash', ['-c', `dd if=${f} iflag=direct bs=256k status=none | b3sum --no-names`]).stdout.trim();
  t.equal(readDirect(), b3(v1), 'first read (ranged GETs of that version, into the block cache) has the right bytes');
  const before = fuseStats(mnt);
  t.equal(readDirect(), b3(v1), 'second read has the right bytes');
  const after = fuseStats(mnt);
  // 3 MiB + a bit in 256 KiB reads: 13 READs, all from the 4 block files the first read verified.
  t.ok(after.nativeReads - before.nativeReads >= 13, `the second read was answered natively (${after.nativeReads - before.nativeReads} native reads)`);
  t.equal(after.jsReads - before.jsReads, 0, 'no READ reached JS');
  // The same name, new bytes of the same size: its block files must not answer for the new version.
  const v2 = randomBytes(v1.length);
  await s3.put('n/obj.bin', v2);
  vdfsOk(home, ['scan', 'cloud']);
  t.ok(await until(() => readDirect() === b3(v2), 15_000), 'after the rescan the new version is read, not the old blocks');
  const mid = fuseStats(mnt);
  await s3.stop();
  t.equal(readDirect(), b3(v2), 'with the bucket down, the new version comes from its own verified blocks');
  t.ok(fuseStats(mnt).nativeReads - mid.nativeReads >= 13, 'natively');
});

// Reads a file through one open O_DIRECT handle: once (fills the cache), twice more (the blocks
// verified meanwhile are registered and read natively), then once more after the parent process
// read another file (evicting this one's blocks). Prints whether each read matched.
const DIRECT_READER = `
import os, sys, mmap
path, want_path = sys.argv[1], sys.argv[2]
want = open(want_path, 'rb').read()
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
def read_all():
    out = bytearray()
    off = 0
    while True:
        n = os.preadv(fd, [buf], off)
        if n <= 0: break
        out += buf[:n]
        off += n
    return bytes(out)
print('first', read_all() == want, flush=True)
sys.stdin.readline()
print('second', read_all() == want, flush=True)
print('third', read_all() == want, flush=True)
sys.stdin.readline()
print('fourth', read_all() == want, flush=True)
os.close(fd)
`;

t.test('a block file evicted while a handle reads it natively is unregistered first: the same open handle still reads the right bytes', async (t) => {
  const { home, src, mnt, m } = await mountWithOracle(t, 'd');
  await m.stop();
  vdfsOk(home, ['config', 'set', 'cache.maxSize', String(3 * 1024 * 1024)]);
  vdfsOk(home, ['config', 'set', 'cache.memorySize', '0']);
  writeFileSync(join(src, 'a.bin'), randomBytes(2 * 1024 * 1024 + 777));
  writeFileSync(join(src, 'b.bin'), randomBytes(2 * 1024 * 1024 + 999));
  vdfsOk(home, ['scan']);
  const m2 = await startMount(home, mnt);
  t.teardown(() => m2.stop());
  const hashOf = (f: string) => sh('b3sum', ['--no-names', join(src, f)]).stdout.trim();
  const byHash = (f: string) => join(mnt, '.vdfs', 'by-hash', hashOf(f));
  const { spawn } = await import('node:child_process');
  const py = spawn('python3', ['-c', DIRECT_READER, byHash('a.bin'), join(src, 'a.bin')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString()));
  py.stderr.on('data', (d: Buffer) => (err += d.toString()));
  t.teardown(() => py.kill());
  t.ok(await until(() => /first \w+\n/.test(out) || py.exitCode !== null, 30_000), `first read done: ${out} ${err}`);
  const blocks = () => Number(sh('bash', ['-c', `find ${join(home, 'cache', 'blocks')} -type f | wc -l`]).stdout.trim());
  t.ok(await until(() => blocks() === 3, 20_000), "a's 3 blocks are in the cache on disk");
  const aFiles = sh('bash', ['-c', `find ${join(home, 'cache', 'blocks')} -type f`])
    .stdout.trim()
    .split('\n');
  const before = fuseStats(mnt);
  py.stdin.write('\n');
  t.ok(await until(() => /third \w+\n/.test(out) || py.exitCode !== null, 30_000), `second and third read done: ${err}`);
  t.ok(fuseStats(mnt).nativeReads > before.nativeReads, 'reads through the open handle were answered natively');
  // b's 3 blocks do not fit beside a's 3 in 3 MiB: a's blocks are evicted while a is open.
  t.equal(sh('bash', ['-c', `dd if=${byHash('b.bin')} iflag=direct bs=256k status=none | b3sum --no-names`]).stdout.trim(), hashOf('b.bin'), 'b read right');
  t.ok(await until(() => aFiles.filter((f) => existsSync(f)).length <= 1, 20_000), "a's block files were evicted (at most one left) while a is still open");
  py.stdin.write('\n');
  // The whole line: a pipe may hand over the word before the rest of it.
  t.ok(await until(() => /fourth \w+\n/.test(out) || py.exitCode !== null, 30_000), `fourth read done: ${out} ${err}`);
  t.match(out, /first True\nsecond True\nthird True\nfourth True/, 'every read through the open handle had the right bytes, before and after the eviction');
});

/** A file of `size` random bytes written into the location, once the daemon's watcher has indexed it with its hash. */
async function indexedFile(t: Test, home: string, src: string, mnt: string, size: number): Promise<{ data: Buffer; want: string; byHash: string }> {
  const data = randomBytes(size);
  writeFileSync(join(src, 'big.bin'), data);
  const want = sh('b3sum', ['--no-names', join(src, 'big.bin')]).stdout.trim();
  const hashed = () => (JSON.parse(vdfs(home, ['stat', '--json', '/d/big.bin']).stdout || '{}') as { hash?: string }).hash === want;
  t.ok(await until(hashed, 30_000), 'the new file is indexed with its hash');
  return { data, want, byHash: join(mnt, '.vdfs', 'by-hash', want) };
}

/** The block cache's files on the disk. */
function blockFiles(home: string): string[] {
  return sh('bash', ['-c', `find ${join(home, 'cache', 'blocks')} -type f`])
    .stdout.trim()
    .split('\n')
    .filter(Boolean);
}

t.test('READs across block boundaries from block files: a block cut short midway is read again through JS, and the next READ is not disturbed', async (t) => {
  const { home, src, mnt } = await mountWithOracle(t, 'd');
  const { data, want, byHash } = await indexedFile(t, home, src, mnt, 5 * 1024 * 1024 + 12345);
  // 384 KiB READs: [0.75, 1.125) MiB spans blocks 0 and 1, [3.75, 4.125) blocks 3 and 4.
  const read = () => sh('bash', ['-c', `dd if=${byHash} iflag=direct bs=384k status=none | b3sum --no-names`]).stdout.trim();
  t.equal(read(), want, 'first read (fills the block cache) has the right bytes');
  const files = () => blockFiles(home);
  t.ok(await until(() => files().length === 6, 20_000), 'all 6 blocks are in the cache on disk');
  const MiB = 1024 * 1024;
  const fileOf = (i: number) => files().find((f) => readFileSync(f).equals(data.subarray(i * MiB, (i + 1) * MiB)));
  const [one, four] = [fileOf(1), fileOf(4)];
  t.ok(one && four, 'blocks 1 and 4 are found in the cache by their bytes');
  const before = fuseStats(mnt);
  t.equal(read(), want, 'second read, every READ native, has the right bytes');
  const mid = fuseStats(mnt);
  t.equal(mid.jsReads - before.jsReads, 0, 'no READ reached JS');
  // Blocks 1 and 4 cut short behind the cache's back (a descriptor kept open still reads a removed
  // file): the READs spanning 0-1 and 3-4 read a good block first, then find the next one short,
  // and go to JS whole; what was read must not reach the next reply.
  truncateSync(one!, 1000);
  truncateSync(four!, 1000);
  t.equal(read(), want, 'with blocks 1 and 4 cut short the bytes are right');
  const after = fuseStats(mnt);
  t.ok(after.jsReads - mid.jsReads >= 2, `the READs of the missing blocks went to JS (${after.jsReads - mid.jsReads})`);
  t.ok(after.nativeReads - mid.nativeReads >= 6, `the others stayed native (${after.nativeReads - mid.nativeReads})`);
  t.equal(read(), want, 'and again');
});

t.test(
  'a fresh daemon re-reading cached content verifies the block files ahead of the reader, which then reads them natively; a damaged one is caught, never served',
  async (t) => {
    const { home, src, mnt, m } = await mountWithOracle(t, 'd');
    const MiB = 1024 * 1024;
    const { data, want, byHash } = await indexedFile(t, home, src, mnt, 24 * MiB + 4321);
    // O_DIRECT, 1 MiB at a time: every READ reaches the daemon, one block each.
    const read = () => sh('bash', ['-c', `dd if=${byHash} iflag=direct bs=1M status=none | b3sum --no-names`]).stdout.trim();
    t.equal(read(), want, 'first read (fills the block cache) has the right bytes');
    const files = () => blockFiles(home);
    t.ok(await until(() => files().length === 25, 30_000), 'all 25 blocks are in the cache on disk');
    // One byte of block 17's file flipped behind the cache's back: verifying it ahead must catch it.
    const seventeen = files().find((f) => readFileSync(f).equals(data.subarray(17 * MiB, 18 * MiB)));
    t.ok(seventeen, 'block 17 is found in the cache by its bytes');
    const bad = readFileSync(seventeen!);
    bad[12345] ^= 0x40;
    writeFileSync(seventeen!, bad);
    await m.stop();
    const m2 = await startMount(home, mnt);
    t.teardown(() => m2.stop());
    const before = fuseStats(mnt);
    t.equal(read(), want, 'the re-read in a fresh daemon has the right bytes (block 17 fetched again from the disk location)');
    const after = fuseStats(mnt);
    // Without verifying ahead, a fresh daemon answers each of the 25 READs in JS (a block file is
    // registered only once a READ of it went through JS). The first READs go to JS while the
    // verification ramps up, and block 17's READ does (its file failed the check).
    const native = after.nativeReads - before.nativeReads;
    t.ok(native >= 8, `READs answered natively from block files verified ahead: ${native} of 25`);
    t.ok(after.jsReads - before.jsReads >= 1, 'the damaged block was read through JS');
    t.equal(read(), want, 'and again');
  },
);
