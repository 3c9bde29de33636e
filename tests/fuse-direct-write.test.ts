import t from 'tap';
import { chmodSync, chownSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountWithOracle, sh } from './helpers/mount';

// Write-only opens of local files are answered with FOPEN_DIRECT_IO (mount/fuse/file-ops.ts,
// directWrites): the kernel passes the writer's pages to the addon without caching them. What
// that must not change: readers of the same file see every write at once, through their own
// cached descriptor and through a mapping, and a write by another user clears setuid as on a disk.

const b3 = (p: string) => sh('b3sum', ['--no-names', p]).stdout.trim();

// A reader with the file cached (descriptor and MAP_SHARED mapping); a write-only writer then
// rewrites the start and appends; the reader reads again through both.
const COHERENCE = `
import os, sys, mmap, json
p = sys.argv[1]
r = os.open(p, os.O_RDONLY)
before = os.pread(r, 8192, 0)
m = mmap.mmap(r, 8192, mmap.MAP_SHARED, mmap.PROT_READ)
mapped_before = m[:4]
w = os.open(p, os.O_WRONLY)
os.pwrite(w, b'BBBB', 0)
os.pwrite(w, b'C' * 5000, 9000)
after = os.pread(r, 8, 0)
mapped_after = m[:4]
size = os.fstat(r).st_size
os.close(w)
print(json.dumps({'before': before[:4].decode(), 'mappedBefore': mapped_before.decode(), 'after': after[:4].decode(), 'mappedAfter': mapped_after.decode(), 'size': size}))
`;

t.test('a write-only writer and a cached reader of one file: the reader sees every write at once', async (t) => {
  const { src, mnt } = await mountWithOracle(t, 'd');
  const file = join(mnt, 'd', 'f.bin');
  writeFileSync(file, Buffer.alloc(8192, 'A'));
  const r = sh('python3', ['-c', COHERENCE, file]);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { before: 'AAAA', mappedBefore: 'AAAA', after: 'BBBB', mappedAfter: 'BBBB', size: 14000 }, 'descriptor, mapping and size follow the writes');
  t.equal(b3(file), b3(join(src, 'f.bin')), 'the mount and the disk hold the same bytes (b3sum)');
  const want = Buffer.alloc(14000, 0);
  want.fill('A', 0, 8192).write('BBBB', 0);
  want.fill('C', 9000);
  t.ok(readFileSync(file).equals(want), 'the bytes are the ones written');
});

t.test('a write by another user clears setuid and setgid as on the disk', async (t) => {
  const { dir, src, oracle, mnt } = await mountWithOracle(t, 'd', [], ['--allow-other']);
  for (const d of [dir, oracle, src]) chmodSync(d, 0o755);
  const asNobody = (p: string) =>
    sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'dd', 'if=/dev/zero', `of=${p}`, 'bs=100', 'count=1', 'conv=notrunc', 'status=none']);
  for (const [name, mode, gid] of [
    ['suid', 0o4777, 0],
    ['sgid-x', 0o2777, 0],
    ['sgid-nox', 0o2767, 0],
    ['sgid-nox-their-group', 0o2767, 65534], // kept: the writer is in the file's group
  ] as const) {
    for (const p of [join(oracle, name), join(mnt, 'd', name)]) {
      writeFileSync(p, 'x');
      chownSync(p, 0, gid);
      chmodSync(p, mode);
    }
    t.equal(asNobody(join(oracle, name)).code, 0, `nobody writes ${name} on the disk`);
    const r = asNobody(join(mnt, 'd', name));
    t.equal(r.code, 0, `nobody writes ${name} through the mount: ${r.stderr}`);
    const disk = (statSync(join(oracle, name)).mode & 0o7777).toString(8);
    t.equal((statSync(join(src, name)).mode & 0o7777).toString(8), disk, `${name}: the backing file's mode is the disk's (${disk})`);
    t.equal((statSync(join(mnt, 'd', name)).mode & 0o7777).toString(8), disk, `${name}: so is the mount's`);
  }
});
