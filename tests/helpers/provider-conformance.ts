import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Test } from 'tap';
import { isFsError, type FsErrorCode } from '../../core/fs-error';
import type { Provider, ProviderEntry } from '../../core/provider';

/** What `seed` can put at a path: file content, a symlink, or an (empty) directory. */
export type SeedItem = Buffer | string | { symlink: string } | { dir: true };

/** One provider under test, over a source the fixture controls directly (not through the provider). */
export interface ConformanceFixture {
  provider: Provider;
  /** Creates (or replaces) the given entries in the source, creating parent directories. */
  seed(files: Record<string, SeedItem>): Promise<void>;
  /** Makes the source unreachable (move the root away, stop the server, kill the peer). */
  unreachable(): Promise<void>;
  /**
   * stat and list keep answering from a copy of the tree while the source is unreachable (a
   * peer location: its tree is replicated into our index, and a location that goes offline
   * stays browsable by design); content reads still fail with EHOSTDOWN.
   */
  offlineTree?: boolean;
  /** Frees everything, including the provider. Must not throw after `unreachable`. */
  cleanup(): Promise<void>;
}

export interface ConformanceSetupOptions {
  /** The location was added with --readonly: every write must fail with EROFS. */
  readonly: boolean;
}

export type ConformanceSetup = (opts: ConformanceSetupOptions) => Promise<ConformanceFixture>;

const MiB = 1 << 20;

/** Runs `fn` and checks it rejects with an FsError of one of `codes`. */
async function rejectsWith(t: Test, fn: () => Promise<unknown>, codes: FsErrorCode | FsErrorCode[], what: string): Promise<void> {
  const want = Array.isArray(codes) ? codes : [codes];
  try {
    const v = await fn();
    t.fail(`${what}: expected ${want.join('|')}, got a result`, { found: v instanceof Buffer ? `Buffer(${v.length})` : v });
  } catch (err) {
    if (!isFsError(err)) t.fail(`${what}: expected FsError ${want.join('|')}, got ${String((err as Error)?.stack ?? err)}`);
    else t.ok(want.includes(err.code), `${what}: ${want.join('|')}`, { found: err.code, message: err.message });
  }
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function byName(list: ProviderEntry[]): Map<string, ProviderEntry> {
  return new Map(list.map((e) => [e.name, e]));
}

/** A local file for putFile, removed when the test ends. */
function localSource(t: Test, content: Buffer | string): string {
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-conf-src-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'src');
  writeFileSync(file, content);
  return file;
}

/**
 * The provider conformance suite: every provider (local, S3, Drive, peer) must pass it
 * unchanged. `setup` is called once per subtest with a fresh, empty source.
 */
export function providerConformance(t: Test, name: string, setup: ConformanceSetup): void {
  // 3 MiB + 123 bytes of random data: several blocks, an unaligned tail.
  const big = randomBytes(3 * MiB + 123);
  const tree: Record<string, SeedItem> = {
    'hello.txt': 'hello world\n',
    empty: Buffer.alloc(0),
    'big.bin': big,
    'dir/nested/deep.txt': 'deep',
    'dir/a.txt': 'a',
    emptydir: { dir: true },
    'Ünïcödé 日本語.txt': 'unicode',
  };

  const withFixture = (title: string, opts: ConformanceSetupOptions, body: (t: Test, f: ConformanceFixture, p: Provider) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const f = await setup(opts);
      t.teardown(() => f.cleanup());
      await f.seed(tree);
      await body(t, f, f.provider);
    });

  withFixture('list', { readonly: false }, async (t, _f, p) => {
    const root = byName(await p.list(''));
    t.same([...root.keys()].sort(), ['big.bin', 'dir', 'empty', 'emptydir', 'hello.txt', 'Ünïcödé 日本語.txt'].sort(), 'root names');
    t.equal(root.get('hello.txt')?.type, 'file');
    t.equal(root.get('hello.txt')?.size, 12);
    t.equal(root.get('big.bin')?.size, big.length);
    t.equal(root.get('empty')?.size, 0);
    t.equal(root.get('dir')?.type, 'dir');
    t.same(await p.list('emptydir'), [], 'an empty directory lists empty');
    t.same((await p.list('dir')).map((e) => e.name).sort(), ['a.txt', 'nested']);
    t.same(
      (await p.list('/dir/nested/')).map((e) => e.name),
      ['deep.txt'],
      'leading and trailing slashes are ignored',
    );
    for (const e of root.values()) t.ok(typeof e.version === 'string' && e.version.length > 0, `${e.name} has a version token`);
    await rejectsWith(t, () => p.list('missing'), 'ENOENT', 'list of a missing directory');
    await rejectsWith(t, () => p.list('hello.txt'), 'ENOTDIR', 'list of a file');
    await rejectsWith(t, () => p.list('hello.txt/x'), ['ENOTDIR', 'ENOENT'], 'list below a file');
  });

  withFixture('stat', { readonly: false }, async (t, f, p) => {
    const s = await p.stat('hello.txt');
    t.match(s, { name: 'hello.txt', type: 'file', size: 12 });
    t.ok(Number.isInteger(s.mtimeSec) && Number.isInteger(s.mtimeNsec) && s.mtimeNsec >= 0 && s.mtimeNsec < 1e9, 'mtime is sec + nsec');
    t.ok(Math.abs(s.mtimeSec - Date.now() / 1000) < 3600, 'mtime is recent');
    t.equal((await p.stat('dir/nested')).type, 'dir');
    t.equal((await p.stat('dir/nested/deep.txt')).name, 'deep.txt');
    t.equal((await p.stat('')).type, 'dir', "'' is the root");
    t.equal((await p.stat('Ünïcödé 日本語.txt')).size, 7, 'unicode names');
    await rejectsWith(t, () => p.stat('missing'), 'ENOENT', 'stat of a missing path');
    await rejectsWith(t, () => p.stat('dir/missing/x'), 'ENOENT', 'stat below a missing directory');
    await rejectsWith(t, () => p.stat('hello.txt/x'), ['ENOTDIR', 'ENOENT'], 'stat below a file');
    // The version token must change when the content does (caches rely on it).
    await f.seed({ 'hello.txt': 'hello, changed world\n' });
    const s2 = await p.stat('hello.txt');
    t.equal(s2.size, 21);
    t.not(s2.version, s.version, 'version changes with the content');
  });

  withFixture('readRange edge cases', { readonly: false }, async (t, _f, p) => {
    const n = big.length;
    const cases: [string, number, number][] = [
      ['zero length', 0, 0],
      ['zero length mid-file', 1000, 0],
      ['zero length at EOF', n, 0],
      ['past EOF', n + 10, 5],
      ['far past EOF', n * 4, MiB],
      ['exactly at EOF', n, 10],
      ['last byte', n - 1, 1],
      ['last byte, long length', n - 1, MiB],
      ['short at EOF', n - 100, 1000],
      ['first byte', 0, 1],
      ['whole file', 0, n],
      ['more than the file', 0, n + MiB],
      ['crossing the 1 MiB boundary, unaligned', MiB - 7, 13],
      ['crossing two block boundaries, unaligned', MiB - 3, MiB + 11],
      ['exactly one block', MiB, MiB],
      ['from the 3 MiB boundary to EOF', 3 * MiB, 200],
      ['odd everything', 12345, 2 * MiB + 999],
    ];
    for (const [what, off, len] of cases) {
      const got = await p.readRange('big.bin', off, len);
      const want = big.subarray(Math.min(off, n), Math.min(off + len, n));
      t.equal(got.length, want.length, `${what}: length`);
      t.ok(got.equals(want), `${what}: bytes`);
    }
    t.equal((await p.readRange('empty', 0, 10)).length, 0, 'empty file reads empty');
    t.equal((await p.readRange('hello.txt', 6, 100)).toString(), 'world\n');
    await rejectsWith(t, () => p.readRange('big.bin', -1, 10), 'EINVAL', 'negative offset');
    await rejectsWith(t, () => p.readRange('big.bin', 0, -1), 'EINVAL', 'negative length');
    await rejectsWith(t, () => p.readRange('big.bin', 0.5, 1), 'EINVAL', 'fractional offset');
    await rejectsWith(t, () => p.readRange('missing', 0, 1), 'ENOENT', 'readRange of a missing file');
    await rejectsWith(t, () => p.readRange('dir', 0, 1), 'EISDIR', 'readRange of a directory');
    // Concurrent reads of different ranges do not interfere.
    const offs = [0, 5, MiB - 1, 2 * MiB + 3, n - 2];
    const many = await Promise.all(offs.map((o) => p.readRange('big.bin', o, 4096)));
    offs.forEach((o, i) => t.ok(many[i].equals(big.subarray(o, Math.min(o + 4096, n))), `concurrent read at ${o}`));
  });

  withFixture('readStream', { readonly: false }, async (t, _f, p) => {
    t.ok((await readAll(await p.readStream('big.bin'))).equals(big), 'whole big file');
    t.equal((await readAll(await p.readStream('empty'))).length, 0, 'empty file');
    t.equal((await readAll(await p.readStream('dir/nested/deep.txt'))).toString(), 'deep');
    await rejectsWith(t, () => p.readStream('missing'), 'ENOENT', 'readStream of a missing file');
    await rejectsWith(t, () => p.readStream('dir'), 'EISDIR', 'readStream of a directory');
  });

  withFixture('symlinks', { readonly: false }, async (t, f, p) => {
    if (!p.features.symlinks) {
      t.equal(p.features.symlinks, false, 'provider declares no symlinks');
      return;
    }
    await f.seed({
      link: { symlink: 'hello.txt' },
      dangling: { symlink: 'nowhere/at/all' },
      'loop-a': { symlink: 'loop-b' },
      'loop-b': { symlink: 'loop-a' },
      escape: { symlink: '/etc' },
    });
    const l = await p.stat('link');
    t.equal(l.type, 'symlink', 'stat does not follow a final symlink');
    t.equal(l.target, 'hello.txt');
    t.equal(await p.readlink('link'), 'hello.txt');
    t.equal(await p.readlink('dangling'), 'nowhere/at/all', 'dangling symlinks are kept');
    t.equal((await p.stat('loop-a')).type, 'symlink', 'a symlink loop is just two symlinks');
    const names = byName(await p.list(''));
    t.equal(names.get('link')?.type, 'symlink');
    t.equal(names.get('loop-b')?.target, 'loop-a');
    await rejectsWith(t, () => p.readlink('hello.txt'), 'EINVAL', 'readlink of a file');
    await rejectsWith(t, () => p.readlink('missing'), 'ENOENT', 'readlink of a missing path');
    // Symlinks are never followed by the provider: no content, no listing, nothing beyond the root.
    await rejectsWith(t, () => p.readRange('link', 0, 10), ['EINVAL', 'ELOOP'], 'readRange of a symlink');
    await rejectsWith(t, () => p.readRange('loop-a', 0, 10), ['EINVAL', 'ELOOP'], 'readRange of a symlink loop');
    await rejectsWith(t, () => p.readStream('link'), ['EINVAL', 'ELOOP'], 'readStream of a symlink');
    await rejectsWith(t, () => p.list('escape'), ['ENOTDIR', 'EINVAL'], 'list through a symlink to /etc');
    await rejectsWith(t, () => p.stat('escape/passwd'), ['ENOTDIR', 'EINVAL', 'ENOENT'], 'stat through a symlink to /etc');
    await rejectsWith(t, () => p.readRange('escape/passwd', 0, 10), ['ENOTDIR', 'EINVAL', 'ENOENT'], 'readRange through a symlink to /etc');
    await rejectsWith(t, () => p.readStream('escape/passwd'), ['ENOTDIR', 'EINVAL', 'ENOENT'], 'readStream through a symlink to /etc');
    await rejectsWith(t, () => p.readlink('escape/passwd'), ['ENOTDIR', 'EINVAL', 'ENOENT'], 'readlink through a symlink to /etc');
  });

  withFixture('paths never leave the root', { readonly: false }, async (t, _f, p) => {
    for (const bad of ['..', '../etc/passwd', 'dir/../../x', 'dir/..', 'a\0b']) {
      const q = JSON.stringify(bad);
      await rejectsWith(t, () => p.stat(bad), 'EINVAL', `stat ${q}`);
      await rejectsWith(t, () => p.list(bad), 'EINVAL', `list ${q}`);
      await rejectsWith(t, () => p.readRange(bad, 0, 1), 'EINVAL', `readRange ${q}`);
      await rejectsWith(t, () => p.readStream(bad), 'EINVAL', `readStream ${q}`);
      await rejectsWith(t, () => p.readlink(bad), 'EINVAL', `readlink ${q}`);
    }
    // An absolute path is relative to the root, never the host's.
    await rejectsWith(t, () => p.stat('/etc/passwd'), 'ENOENT', 'stat /etc/passwd is inside the root');
    t.equal((await p.readRange('/hello.txt', 0, 5)).toString(), 'hello');
  });

  withFixture('unreachable source', { readonly: false }, async (t, f, p) => {
    t.equal(await p.isOnline(), true, 'online at first');
    await f.unreachable();
    t.equal(await p.isOnline(), false, 'offline after');
    if (f.offlineTree) {
      t.match(await p.stat('hello.txt'), { type: 'file', size: 12 }, 'stat answers from the copy of the tree');
      t.same(
        (await p.list('')).map((e) => e.name).sort(),
        ['big.bin', 'dir', 'empty', 'emptydir', 'hello.txt', 'Ünïcödé 日本語.txt'].sort(),
        'list answers from the copy of the tree',
      );
    } else {
      await rejectsWith(t, () => p.stat('hello.txt'), 'EHOSTDOWN', 'stat when unreachable');
      await rejectsWith(t, () => p.list(''), 'EHOSTDOWN', 'list when unreachable');
    }
    await rejectsWith(t, () => p.readRange('hello.txt', 0, 1), 'EHOSTDOWN', 'readRange when unreachable');
  });

  withFixture('writes', { readonly: false }, async (t, _f, p) => {
    if (!p.features.write) {
      await rejectsWith(t, () => p.mkdir('x'), ['EROFS', 'ENOTSUP'], 'mkdir without the write feature');
      return;
    }
    // putFile: create, replace, into a missing parent, onto a directory.
    const e = await p.putFile('new.txt', localSource(t, 'fresh'));
    t.match(e, { name: 'new.txt', type: 'file', size: 5 });
    t.equal((await p.readRange('new.txt', 0, 100)).toString(), 'fresh');
    const v1 = (await p.stat('hello.txt')).version;
    const e2 = await p.putFile('hello.txt', localSource(t, 'replaced content'));
    t.equal(e2.size, 16);
    t.not(e2.version, v1, 'replacing changes the version');
    t.equal((await p.readRange('hello.txt', 0, 100)).toString(), 'replaced content');
    await p.putFile('dir/nested/big-copy.bin', localSource(t, big));
    t.ok((await p.readRange('dir/nested/big-copy.bin', 0, big.length)).equals(big), 'a multi-block put round-trips');
    await rejectsWith(t, () => p.putFile('nodir/x.txt', localSource(t, 'x')), 'ENOENT', 'putFile into a missing directory');
    await rejectsWith(t, () => p.putFile('dir', localSource(t, 'x')), 'EISDIR', 'putFile onto a directory');
    await rejectsWith(t, () => p.putFile('../x.txt', localSource(t, 'x')), 'EINVAL', 'putFile outside the root');
    t.same(
      (await p.list('')).map((x) => x.name).filter((n) => /tmp/i.test(n)),
      [],
      'no temporary files are left behind',
    );

    // mkdir
    await p.mkdir('made');
    t.equal((await p.stat('made')).type, 'dir');
    await rejectsWith(t, () => p.mkdir('made'), 'EEXIST', 'mkdir of an existing directory');
    await rejectsWith(t, () => p.mkdir('hello.txt'), 'EEXIST', 'mkdir over a file');
    await rejectsWith(t, () => p.mkdir('no/such/parent'), 'ENOENT', 'mkdir in a missing directory');
    await rejectsWith(t, () => p.mkdir('../escape'), 'EINVAL', 'mkdir outside the root');

    // rename
    await p.rename('new.txt', 'made/moved.txt');
    await rejectsWith(t, () => p.stat('new.txt'), 'ENOENT', 'renamed file is gone from its old path');
    t.equal((await p.readRange('made/moved.txt', 0, 100)).toString(), 'fresh');
    await p.rename('made/moved.txt', 'hello.txt');
    t.equal((await p.readRange('hello.txt', 0, 100)).toString(), 'fresh', 'rename replaces an existing file');
    await p.rename('dir', 'dir2');
    t.equal((await p.readRange('dir2/nested/deep.txt', 0, 100)).toString(), 'deep', 'a directory rename moves its subtree');
    await rejectsWith(t, () => p.rename('missing', 'x'), 'ENOENT', 'rename of a missing path');
    await rejectsWith(t, () => p.rename('made', 'dir2'), ['ENOTEMPTY', 'EEXIST'], 'rename onto a non-empty directory');
    await rejectsWith(t, () => p.rename('hello.txt', '../out.txt'), 'EINVAL', 'rename outside the root');
    t.equal((await p.readRange('hello.txt', 0, 100)).toString(), 'fresh', 'a refused rename changes nothing');

    // remove
    await rejectsWith(t, () => p.remove('dir2'), 'ENOTEMPTY', 'remove of a non-empty directory');
    await p.remove('dir2/nested/deep.txt');
    await p.remove('dir2/nested/big-copy.bin');
    await p.remove('dir2/nested');
    await rejectsWith(t, () => p.stat('dir2/nested'), 'ENOENT', 'removed directory is gone');
    await p.remove('empty');
    await rejectsWith(t, () => p.remove('empty'), 'ENOENT', 'remove of a missing path');
    await rejectsWith(t, () => p.remove(''), ['EINVAL', 'EBUSY', 'EPERM'], 'the root cannot be removed');
    await rejectsWith(t, () => p.remove('../x'), 'EINVAL', 'remove outside the root');
    if (p.features.symlinks) {
      await _f.seed({ ln: { symlink: 'hello.txt' } });
      await p.remove('ln');
      t.equal((await p.readRange('hello.txt', 0, 100)).toString(), 'fresh', 'removing a symlink keeps its target');
    }
  });

  withFixture('read-only provider refuses every change with EROFS', { readonly: true }, async (t, _f, p) => {
    await rejectsWith(t, () => p.putFile('new.txt', localSource(t, 'x')), 'EROFS', 'putFile');
    await rejectsWith(t, () => p.putFile('hello.txt', localSource(t, 'x')), 'EROFS', 'putFile over a file');
    await rejectsWith(t, () => p.mkdir('made'), 'EROFS', 'mkdir');
    await rejectsWith(t, () => p.remove('hello.txt'), 'EROFS', 'remove');
    await rejectsWith(t, () => p.rename('hello.txt', 'x.txt'), 'EROFS', 'rename');
    t.equal((await p.readRange('hello.txt', 0, 100)).toString(), 'hello world\n', 'reads still work, nothing changed');
    t.same((await p.list('')).map((e) => e.name).sort(), ['big.bin', 'dir', 'empty', 'emptydir', 'hello.txt', 'Ünïcödé 日本語.txt'].sort());
  });
}
