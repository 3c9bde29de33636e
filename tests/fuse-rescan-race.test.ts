import t from 'tap';
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { startMount, sh } from './helpers/mount';

// Writes through a fresh mount while its start-up rescan walks the same directories: every
// write succeeds, what was written stays (in the mount and on the disk) and the rescan never
// fails because of them (it used to insert a name twice: "EEXIST ... already exists in the
// index", then roll back the writes it had taken into its own transaction: ENOENT for cp).
t.test('writes during the start-up rescan all succeed and the rescan does not fail', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  // Many directories: the walk takes long enough for writes to land in directories it has not
  // listed yet, and in ones it is listing.
  const DIRS = 1500;
  const FILES = 4;
  for (let d = 0; d < DIRS; d++) {
    mkdirSync(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < FILES; f++) writeFileSync(join(src, `d${d}`, `f${f}`), `${d}/${f}\n`);
  }
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  vdfsOk(home, ['scan']);
  // Changed while no daemon ran: the start-up rescan has all of it to update and re-hash.
  for (let d = 0; d < DIRS; d++) for (let f = 0; f < FILES; f++) utimesSync(join(src, `d${d}`, `f${f}`), 1_500_000_000, 1_500_000_000 + f);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const failures: string[] = [];
  const written: string[] = [];
  let overlapped = false;
  for (let i = 0; i < DIRS; i++) {
    const d = `d${DIRS - 1 - i}`;
    const file = join(mnt, 'l', d, `new${i}`);
    const sub = join(mnt, 'l', d, `sub${i}`);
    try {
      writeFileSync(file, `new ${i}\n`);
      written.push(`${d}/new${i}`);
      if (i % 10 === 0) {
        mkdirSync(sub);
        const cp = sh('cp', ['-p', file, join(sub, 'copy')]);
        if (cp.code !== 0) throw new Error(cp.stderr);
        written.push(`${d}/sub${i}/copy`);
      }
    } catch (err) {
      failures.push(`${i}: ${(err as Error).message}`);
    }
    if (!m.output().includes('start-up rescan done')) overlapped = true;
  }
  t.same(failures, [], 'every write through the mount succeeded');
  t.ok(overlapped, 'the writes ran while the start-up rescan did');
  const started = Date.now();
  while (!/start-up rescan (done|failed)/.test(m.output()) && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 100));
  t.match(m.output(), /start-up rescan done/, 'the rescan finished');
  t.notMatch(m.output(), /rescan failed/, 'and did not fail');
  const lost = written.filter((rel) => {
    try {
      const want = readFileSync(join(src, rel), 'utf8');
      return readFileSync(join(mnt, 'l', rel), 'utf8') !== want || statSync(join(mnt, 'l', rel)).size !== want.length;
    } catch {
      return true;
    }
  });
  t.same(lost, [], 'everything written is on the disk and in the mount after the rescan');
});

// Removals and renames through the mount while the start-up rescan walks the same folders: a
// name the walk listed before it went must not come back into the index (a ghost the mount
// shows but the disk lacks), and its new name must be there.
t.test('names removed or renamed during the start-up rescan do not come back', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  const DIRS = 1500;
  for (let d = 0; d < DIRS; d++) {
    mkdirSync(join(src, `d${d}`), { recursive: true });
    for (const f of ['f0', 'f1', 'f2']) writeFileSync(join(src, `d${d}`, f), `${d}/${f}\n`);
  }
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  vdfsOk(home, ['scan']);
  for (let d = 0; d < DIRS; d++) utimesSync(join(src, `d${d}`, 'f2'), 1_500_000_000, 1_500_000_000);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const failures: string[] = [];
  let overlapped = false;
  for (let i = 0; i < DIRS; i++) {
    const d = join(mnt, 'l', `d${(i * 7) % DIRS}`);
    try {
      unlinkSync(join(d, 'f0'));
      renameSync(join(d, 'f1'), join(d, 'g1'));
    } catch (err) {
      failures.push(`${i}: ${(err as Error).message}`);
    }
    if (!m.output().includes('start-up rescan done')) overlapped = true;
  }
  t.same(failures, [], 'every unlink and rename through the mount succeeded');
  t.ok(overlapped, 'they ran while the start-up rescan did');
  const started = Date.now();
  while (!/start-up rescan (done|failed)/.test(m.output()) && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 100));
  t.match(m.output(), /start-up rescan done/, 'the rescan finished');
  const indexed = (glob: string) => (JSON.parse(vdfsOk(home, ['find', '--name', glob, '--json']).stdout) as string[]).sort();
  t.same(indexed('f0'), [], 'no removed name is back in the index');
  t.same(indexed('f1'), [], 'no renamed name is back under its old name');
  t.equal(indexed('g1').length, DIRS, 'every new name is indexed');
  t.equal(indexed('f2').length, DIRS, 'and the untouched files are still there');
});

// A file removed on the disk and at once written again through the mount, before the watcher
// has told the daemon: the kernel still has the name, so its open reaches the daemon as an OPEN
// of the old entry (FUSE never carries O_CREAT there), whose file is gone. That failed ENOENT
// until the watcher caught up; now the daemon forgets the entry and answers ESTALE, the kernel
// looks the name up again and creates the file, as on a disk.
t.test('a file removed on the disk is written again through the mount at once', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(src, { recursive: true });
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'l', src]);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const failures: string[] = [];
  for (let i = 0; i < 10; i++) {
    const through = join(mnt, 'l', 'again.txt');
    try {
      writeFileSync(through, `first ${i}\n`);
      statSync(through); // the kernel caches the name
    } catch (err) {
      // Failed once in CI (ENOENT): the watcher's refresh of the round before, probed before the
      // CREATE, removed the CREATE's row after it (tests/vfs-refresh-probe.test.ts has the race).
      failures.push(`${i}: the first write: ${(err as Error).message}`);
      continue;
    }
    unlinkSync(join(src, 'again.txt'));
    try {
      writeFileSync(through, `second ${i}\n`);
      const onDisk = readFileSync(join(src, 'again.txt'), 'utf8');
      if (onDisk !== `second ${i}\n`) failures.push(`${i}: the disk has ${JSON.stringify(onDisk)}`);
      const seen = readFileSync(through, 'utf8');
      if (seen !== `second ${i}\n`) failures.push(`${i}: the mount shows ${JSON.stringify(seen)}`);
    } catch (err) {
      failures.push(`${i}: ${(err as Error).message}`);
    }
  }
  t.same(failures, [], 'every write after a removal on the disk succeeded, and the disk and the mount hold its bytes');
});
