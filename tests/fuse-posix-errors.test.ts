import t from 'tap';
import { chmodSync } from 'node:fs';
import { mountWithOracle } from './helpers/mount';
import { compareSnaps, OTHER_USER, PosixOps } from './helpers/posix-ops';

// Errors through the mount are the disk's errors, with the same precedence: each call runs on
// a local location through the mount and on a real directory of the same disk, as root and
// as another user, and must fail (or succeed) the same way.

const SETUP: Record<string, unknown>[] = [
  { op: 'mkdir', p: 'a', mode: 0o755 },
  { op: 'write', p: 'a/b', n: 10, seed: 1 },
  { op: 'mkdir', p: 'full', mode: 0o755 },
  { op: 'write', p: 'full/x', n: 10, seed: 2 },
  { op: 'symlink', p: 'loop1', target: 'loop2' },
  { op: 'symlink', p: 'loop2', target: 'loop1' },
  { op: 'mkdir', p: 'private', mode: 0o700 },
  { op: 'write', p: 'private/x', n: 10, seed: 3 },
  { op: 'mkdir', p: 'open', mode: 0o777 },
  { op: 'chmod', p: 'open', mode: 0o1777 },
  { op: 'mkfifo', p: 'fifo', mode: 0o666 },
  { op: 'mknod', p: 'null', kind: 'chr', mode: 0o666, major: 1, minor: 3 },
];

const CALLS: Record<string, unknown>[] = [
  { op: 'chmod', p: 'a/b/c', mode: 0o644 }, // ENOTDIR before ENOENT
  { op: 'chmod', p: 'a/nope/c', mode: 0o644 },
  { op: 'write', p: 'a/b/c', n: 1, seed: 0 },
  { op: 'mkdir', p: 'a', mode: 0o755 },
  { op: 'mkdir', p: 'a/b', mode: 0o755 },
  { op: 'rmdir', p: 'full' },
  { op: 'unlink', p: 'full' },
  { op: 'rmdir', p: 'a/b' },
  { op: 'rename', p: 'full', to: 'a/b' },
  { op: 'rename', p: 'a/b', to: 'full' },
  { op: 'rename', p: 'full', to: 'full/sub' },
  { op: 'rename2', p: 'a/b', to: 'full/x', flags: 1 },
  { op: 'write', p: 'full', n: 1, seed: 0 },
  { op: 'write', p: 'n'.repeat(256), n: 1, seed: 0 },
  { op: 'mkdir', p: `a/${'n'.repeat(256)}`, mode: 0o755 },
  { op: 'read', p: 'loop1' },
  { op: 'write', p: 'loop1/x', n: 1, seed: 0 },
  { op: 'link', p: 'full', to: 'full2' },
  { op: 'link', p: 'a/b', to: 'full/x' },
  { op: 'truncate', p: 'full', size: 0 },
  { op: 'read', p: 'private/x' },
  { op: 'write', p: 'private/new', n: 1, seed: 0 },
  { op: 'mkdir', p: 'a/sub', mode: 0o755 },
  { op: 'chmod', p: 'a/b', mode: 0o600 },
  { op: 'chown', p: 'a/b', uid: 4242, gid: -1 },
  { op: 'chown', p: 'a/b', uid: -1, gid: 4242 },
  { op: 'utimens', p: 'a/b', a: [1, 0], m: [1, 0] },
  { op: 'utimens', p: 'a/b', a: 'now', m: 'now' },
  { op: 'write', p: 'open/mine', n: 5, seed: 4 },
  // Special files: where they may be made, what the calls on them answer.
  { op: 'write', p: 'fifo', n: 1, seed: 0 }, // ENXIO: no reader (opened O_NONBLOCK)
  { op: 'read', p: 'fifo' },
  { op: 'truncate', p: 'fifo', size: 0 },
  { op: 'mkfifo', p: 'fifo', mode: 0o644 },
  { op: 'mkfifo', p: 'a/b/c', mode: 0o644 },
  { op: 'mkfifo', p: 'private/f', mode: 0o644 },
  { op: 'mkfifo', p: 'open/f', mode: 0o640 },
  { op: 'mknod', p: 'open/s', kind: 'sock', mode: 0o755 },
  { op: 'mknod', p: 'open/c', kind: 'chr', mode: 0o600, major: 1, minor: 5 },
  { op: 'mknod', p: 'open/b', kind: 'blk', mode: 0o600, major: 7, minor: 0 },
  { op: 'rmdir', p: 'fifo' },
  { op: 'write', p: 'fifo/x', n: 1, seed: 0 },
  { op: 'readdir', p: 'null' },
  { op: 'chmod', p: 'null', mode: 0o600 },
  { op: 'chown', p: 'fifo', uid: 4242, gid: -1 },
  { op: 'utimens', p: 'fifo', a: [5, 0], m: [6, 0] },
  { op: 'link', p: 'open/f', to: 'open/f2' },
  { op: 'rename', p: 'open/f2', to: 'open/f3' },
  { op: 'unlink', p: 'open/f3' },
  { op: 'unlink', p: 'open/../a/b' },
];

for (const user of [undefined, OTHER_USER])
  t.test(`errors match the disk, as ${user ? 'another user' : 'root'}`, async (t) => {
    const { dir, mnt, oracle } = await mountWithOracle(t, 'm', [], ['--allow-other']);
    chmodSync(dir, 0o755);
    const root = [new PosixOps(`${mnt}/m`), new PosixOps(oracle)];
    const caller = user ? [new PosixOps(`${mnt}/m`, user), new PosixOps(oracle, user)] : root;
    t.teardown(() => {
      for (const p of new Set([...root, ...caller])) p.close();
    });
    for (const op of SETUP) for (const side of root) t.equal(await side.run(op), 'ok', `setup ${JSON.stringify(op)}`);
    for (const op of CALLS) {
      const [got, want] = [await caller[0].run(op), await caller[1].run(op)];
      t.same(got, want, `${JSON.stringify(op).slice(0, 90)}: ${JSON.stringify(want)}`);
    }
    // RENAME_EXCHANGE on a local folder: the disk's own renameat2 (the whole tree is compared below).
    const swap = { op: 'rename2', p: 'a', to: 'full', flags: 2 };
    t.equal(await root[0].run(swap), await root[1].run(swap), 'RENAME_EXCHANGE answers as on the disk');
    // And the whole tree, special files included, is the disk's.
    const snaps = [await root[0].snap(''), await root[1].snap('')];
    t.equal(compareSnaps(snaps[0], snaps[1], {}, {}), undefined, 'the same whole lstat after every call');
  });
