import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, until, vdfsOk } from './helpers/cli';
import { mountWithOracle, sh, startMount } from './helpers/mount';

// Write-behind (mount/fuse/native/fd-registry.c, registry_write_behind): once a handle's
// sequential run of native writes holds 8 MiB not yet handed to writeback, the addon starts
// their writeback (sync_file_range, not waiting for the disk) after answering the write. It
// must not change a byte: unaligned chunks, a hole, a rewrite of bytes already under writeback,
// both the direct (write-only) and the cached (read-write) open; and errors still reach the writer.

const fuseStats = (mnt: string) => JSON.parse(sh('getfattr', ['--only-values', '-n', 'user.vdfs.fuse', mnt]).stdout) as { writeBehinds: number; nativeWrites: number };

// Writes PAYLOAD into PATH the same way every time: unaligned sequential chunks, then a hole of
// 5 MiB + 123 bytes, more sequential chunks, then a rewrite of an early range; fsync; close.
// Prints the file size and where its first hole starts (SEEK_HOLE).
const WRITER = `
import os, sys, json
path, payload, mode = sys.argv[1], open(sys.argv[2], 'rb').read(), sys.argv[3]
fd = os.open(path, (os.O_WRONLY if mode == 'w' else os.O_RDWR) | os.O_CREAT | os.O_TRUNC, 0o644)
pos, src, sizes, i = 0, 0, [1000003, 65537, 4096, 777777, 1048576, 131071], 0
def run(until):
    global pos, src, i
    while pos < until:
        n = min(sizes[i % len(sizes)], until - pos); i += 1
        assert os.pwrite(fd, payload[src:src + n], pos) == n
        pos += n; src += n
run(20 * 1048576 + 17)
pos += 5 * 1048576 + 123
run(pos + 12 * 1048576 + 5)
assert os.pwrite(fd, payload[-2 * 1048576:], 3 * 1048576 + 5) == 2 * 1048576
os.fsync(fd)
os.close(fd)
r = os.open(path, os.O_RDONLY)
size, hole = os.fstat(r).st_size, os.lseek(r, 0, os.SEEK_HOLE)
os.close(r)
print(json.dumps({'size': size, 'hole': hole}))
`;

t.test('long sequential writes are handed to writeback early; every byte is the one written (b3sum), holes stay holes', async (t) => {
  const { dir, src, oracle, mnt } = await mountWithOracle(t, 'wb');
  const payload = join(dir, 'payload.bin');
  writeFileSync(payload, randomBytes(40 * 1024 * 1024));
  const holeAt = 20 * 1024 * 1024 + 17;
  for (const mode of ['w', 'rw']) {
    const name = `seq-${mode}.bin`;
    const before = fuseStats(mnt);
    const onDisk = sh('python3', ['-c', WRITER, join(oracle, name), payload, mode]);
    t.equal(onDisk.code, 0, onDisk.stderr);
    const through = sh('python3', ['-c', WRITER, join(mnt, 'wb', name), payload, mode]);
    t.equal(through.code, 0, through.stderr);
    const after = fuseStats(mnt);
    t.ok(after.nativeWrites - before.nativeWrites >= 40, `${mode}: the writes were answered by the addon (${after.nativeWrites - before.nativeWrites})`);
    // 20 MiB, then 12 MiB after the hole (a new run): two 8 MiB windows, then one more, unless a
    // window came due while another was still being handed over (then the next write takes it).
    t.ok(after.writeBehinds - before.writeBehinds >= 2, `${mode}: runs handed to writeback early (${after.writeBehinds - before.writeBehinds})`);
    const want = b3sum(join(oracle, name));
    t.equal(b3sum(join(src, name)), want, `${mode}: the backing file holds the bytes written on the disk (b3sum)`);
    t.equal(sh('b3sum', ['--no-names', join(mnt, 'wb', name)]).stdout.trim(), want, `${mode}: and so does the mount`);
    const disk = JSON.parse(onDisk.stdout) as { size: number; hole: number };
    const mine = JSON.parse(through.stdout) as { size: number; hole: number };
    t.equal(mine.size, disk.size, `${mode}: the size is the disk's (${disk.size})`);
    t.ok(mine.hole >= holeAt - 4096 && mine.hole <= holeAt + 4096, `${mode}: the skipped range is a hole (SEEK_HOLE ${mine.hole}, written up to ${holeAt})`);
    const hashOf = () => sh('getfattr', ['--only-values', '-n', 'user.vdfs.hash', join(mnt, 'wb', name)]).stdout;
    t.ok(await until(() => hashOf() === want, 30_000), `${mode}: the index learns the content's hash after close`);
  }
  const ro = sh('python3', [
    '-c',
    'import os,sys\nfd=os.open(sys.argv[1], os.O_RDONLY)\ntry:\n  os.write(fd, b"x")\nexcept OSError as e:\n  print(e.errno)',
    join(mnt, 'wb', 'seq-w.bin'),
  ]);
  t.equal(ro.stdout.trim(), '9', 'a write through a read-only descriptor fails with EBADF');
});

t.test('a full disk: ENOSPC reaches a sequential writer whose earlier bytes went to writeback early', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const small = join(dir, 'small');
  const mnt = join(dir, 'mnt');
  const image = join(dir, 'small.img');
  mkdirSync(small);
  // A real block file system (on tmpfs sync_file_range does nothing): 24 MiB of ext4 on a loop device.
  t.equal(sh('truncate', ['-s', '24M', image]).code, 0);
  const mkfs = sh('mkfs.ext4', ['-q', '-F', image]);
  t.equal(mkfs.code, 0, `mkfs.ext4: ${mkfs.stderr}`);
  const mounted = sh('mount', ['-o', 'loop', image, small]);
  t.equal(mounted.code, 0, `a loop-mounted ext4 for the location (needs root): ${mounted.stderr}`);
  t.teardown(() => {
    sh('umount', ['-l', small]);
  });
  writeFileSync(join(small, 'precious.txt'), 'acknowledged earlier');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'small', small]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const payload = join(dir, 'payload.bin');
  writeFileSync(payload, randomBytes(64 * 1024 * 1024));
  const before = fuseStats(mnt);
  const r = sh('dd', [`if=${payload}`, `of=${join(mnt, 'small', 'big.bin')}`, 'bs=1M', 'conv=fsync']);
  t.not(r.code, 0, 'the write fails');
  t.match(r.stderr, /No space left on device/, 'with ENOSPC');
  t.ok(fuseStats(mnt).writeBehinds > before.writeBehinds, 'after part of the file had gone to writeback early');
  const copied = Number(/(\d+) bytes .* copied/.exec(r.stderr)?.[1] ?? -1);
  t.ok(copied >= 8 * 1024 * 1024, `dd was told ${copied} bytes were written`);
  const head = readFileSync(payload).subarray(0, copied);
  const wrote = readFileSync(join(small, 'big.bin')).subarray(0, copied);
  t.ok(wrote.equals(head), 'every acknowledged byte is on the disk');
  t.equal(readFileSync(join(small, 'precious.txt'), 'utf8'), 'acknowledged earlier', 'existing data intact');
  t.equal(sh('rm', [join(mnt, 'small', 'big.bin')]).code, 0, 'the partial file can be removed');
  const again = sh('dd', [`if=${payload}`, `of=${join(mnt, 'small', 'after.bin')}`, 'bs=1M', 'count=10', 'conv=fsync', 'status=none']);
  t.equal(again.code, 0, `and writing works again: ${again.stderr}`);
  t.equal(b3sum(join(small, 'after.bin')), sh('bash', ['-c', `head -c ${10 * 1024 * 1024} ${payload} | b3sum --no-names`]).stdout.trim(), 'byte-exact (b3sum)');
});
