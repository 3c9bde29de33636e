import t from 'tap';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { sh } from './helpers/mount';

interface FsckReport {
  checked: number;
  ok: number;
  repaired: number;
  unrepaired: number;
  problems: { path: string; status: string; repaired: boolean; detail?: string }[];
}
interface Whereis {
  replicas: { path: string; lastVerified: string | null }[];
}

/** Flips one byte in place and puts the mtime back to the nanosecond: bit rot, not an edit. */
function flipByte(file: string, at: number): void {
  const st = statSync(file, { bigint: true });
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(1);
  b[0] = readFileSync(file)[at] ^ 0x40;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
  const ns = st.mtimeNs;
  const r = sh('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, file]);
  if (r.code !== 0) throw new Error(r.stderr);
  if (statSync(file, { bigint: true }).mtimeNs !== ns) throw new Error('mtime not restored');
}

t.test('fsck finds a flipped byte and a missing file, --repair restores both from another replica; an edit is reported as changed and left alone', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  mkdirSync(join(a, 'd'), { recursive: true });
  mkdirSync(b);
  const rot = randomBytes(3 * (1 << 20) + 99);
  const gone = randomBytes(50_000);
  const edited = randomBytes(20_000);
  writeFileSync(join(a, 'd', 'rot.bin'), rot);
  writeFileSync(join(b, 'rot-copy.bin'), rot);
  writeFileSync(join(a, 'gone.bin'), gone);
  writeFileSync(join(b, 'gone-copy.bin'), gone);
  writeFileSync(join(a, 'edited.bin'), edited);
  writeFileSync(join(b, 'edited-copy.bin'), edited);
  writeFileSync(join(a, 'alone.txt'), 'only here\n');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'a', a]);
  vdfsOk(home, ['location', 'add', 'b', b]);
  vdfsOk(home, ['scan']);
  const rotHash = b3sum(join(a, 'd', 'rot.bin'));

  const clean = vdfsOk(home, ['fsck', '--json']).json<FsckReport>();
  t.same([clean.checked, clean.ok, clean.problems.length], [7, 7, 0], 'a clean tree checks clean');
  const w = vdfsOk(home, ['whereis', '/a/d/rot.bin', '--json']).json<Whereis>();
  t.ok(
    w.replicas.every((r) => r.lastVerified !== null),
    'whereis shows when each replica was verified',
  );

  // Bounded I/O: 3 MiB at --rate 1 cannot take less than about 3 s (a lower bound: the machine may be slower).
  const slow = vdfsOk(home, ['fsck', '/a/d/rot.bin', '--rate', '1', '--json']).json<FsckReport & { seconds: number }>();
  t.ok(slow.seconds >= 2.5, `--rate 1 MiB/s read 3 MiB in ${slow.seconds} s`);

  flipByte(join(a, 'd', 'rot.bin'), 2 * (1 << 20) + 5);
  rmSync(join(a, 'gone.bin'));
  writeFileSync(join(a, 'edited.bin'), Buffer.concat([edited, Buffer.from('an edit')]));

  const found = vdfs(home, ['fsck', 'a', '--json']);
  t.equal(found.code, 1, 'non-zero exit: problems not repaired');
  const f = found.json<FsckReport>();
  const status = Object.fromEntries(f.problems.map((p) => [p.path, p.status]));
  t.same(status, { '/a/d/rot.bin': 'rot', '/a/gone.bin': 'missing', '/a/edited.bin': 'changed' });
  t.equal(f.unrepaired, 2, 'the edit is not counted as a problem');
  const w2 = vdfsOk(home, ['whereis', '/a/d/rot.bin', '--json']).json<Whereis>();
  t.equal(w2.replicas.find((r) => r.path === '/a/d/rot.bin')!.lastVerified, null, 'a rotten replica is no longer shown as verified');

  const rep = vdfs(home, ['fsck', '/a', '--repair', '--json']);
  t.equal(rep.code, 0, `everything repairable was repaired: ${rep.stderr}`);
  const r = rep.json<FsckReport>();
  t.same(r.problems.map((p) => [p.path, p.status, p.repaired]).sort(), [
    ['/a/d/rot.bin', 'rot', true],
    ['/a/edited.bin', 'changed', false],
    ['/a/gone.bin', 'missing', true],
  ]);
  t.equal(b3sum(join(a, 'd', 'rot.bin')), rotHash, 'the flipped byte is restored (b3sum)');
  t.ok(readFileSync(join(a, 'gone.bin')).equals(gone), 'the missing file is restored');
  t.ok(readFileSync(join(a, 'edited.bin')).equals(Buffer.concat([edited, Buffer.from('an edit')])), 'the edited file is never "repaired"');
  const again = vdfsOk(home, ['fsck', 'a', '--json']).json<FsckReport>();
  t.same(
    again.problems.map((p) => p.status),
    ['changed'],
    'after repair only the edit remains (a rescan indexes it)',
  );
  t.match(
    vdfsOk(home, ['whereis', '/a/d/rot.bin', '--json'])
      .json<Whereis>()
      .replicas.find((x) => x.path === '/a/d/rot.bin')!.lastVerified,
    /^\d{4}-/,
  );

  // A rotten file with no other replica: reported, exit non-zero, not touched.
  flipByte(join(a, 'alone.txt'), 0);
  const before = readFileSync(join(a, 'alone.txt'));
  const lone = vdfs(home, ['fsck', '/a/alone.txt', '--repair', '--json']);
  t.equal(lone.code, 1);
  t.match(lone.json<FsckReport>().problems[0], { status: 'rot', repaired: false, detail: /repair failed/ });
  t.ok(readFileSync(join(a, 'alone.txt')).equals(before), 'left as it was');
  t.equal(vdfs(home, ['fsck', 'nope']).code, 3, 'an unknown location: ENOENT');
});
