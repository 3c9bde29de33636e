import t from 'tap';
import { appendFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, vdfsOk } from './helpers/cli';

interface Item {
  name: string;
  type: string;
  size: number;
  mtime: string;
  hash: string | null;
}
interface Summary {
  files: number;
  dirs: number;
  bytes: number;
  hashed: number;
  unchanged: number;
  errors: number;
  seconds: number;
}

function makeTree(root: string): void {
  mkdirSync(join(root, 'photos', '2024', 'summer'), { recursive: true });
  mkdirSync(join(root, 'docs'));
  writeFileSync(join(root, 'docs', 'readme.txt'), 'hello vdfs\n');
  writeFileSync(join(root, 'photos', '2024', 'summer', 'beach.jpg'), Buffer.alloc(2_500_000, 7)); // several blocks
  writeFileSync(join(root, 'photos', 'copy-of-readme.txt'), 'hello vdfs\n'); // duplicate
  writeFileSync(join(root, 'docs', 'Ünïcödé 日本語.txt'), 'unicode name');
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'docs', 'multi\nline'), 'newline in name');
  symlinkSync('docs/readme.txt', join(root, 'link-to-readme'));
  writeFileSync(join(root, '.DS_Store'), 'junk');
}

/** Walks `vdfs ls --json` recursively: virtual path -> item. */
function listAll(home: string, vpath: string, out = new Map<string, Item>()): Map<string, Item> {
  for (const item of vdfsOk(home, ['ls', vpath, '--json']).json<Item[]>()) {
    const p = `${vpath}/${item.name}`;
    out.set(p, item);
    if (item.type === 'dir') listAll(home, p, out);
  }
  return out;
}

t.test('scan indexes a tree with hashes equal to b3sum; rescans hash only what changed', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src');
  const home = join(dir, 'home');
  mkdirSync(src);
  makeTree(src);
  vdfsOk(home, ['init', '--name', 'test-node']);
  vdfsOk(home, ['location', 'add', 'main', src]);
  const s1 = vdfsOk(home, ['scan', '--json']).json<Summary>();
  t.equal(s1.files, 6, 'six regular files (OS junk ignored)');
  t.equal(s1.hashed, 6);
  t.equal(s1.unchanged, 0);
  t.equal(s1.errors, 0);
  t.equal(s1.dirs, 5, 'root, docs, photos, 2024, summer');

  const all = listAll(home, '/main');
  t.notOk(all.has('/main/.DS_Store'), 'junk not indexed');
  let files = 0;
  for (const [vpath, item] of all) {
    if (item.type !== 'file') continue;
    files++;
    t.equal(item.hash, b3sum(join(src, vpath.slice('/main/'.length))), `hash of ${JSON.stringify(vpath)} equals b3sum`);
  }
  t.equal(files, 6);
  t.equal(all.get('/main/link-to-readme')?.type, 'symlink');
  t.equal(all.get('/main/empty')?.hash, b3sum(join(src, 'empty')), 'empty file has the hash of the empty string');

  const dupes = vdfsOk(home, ['dupes', '--json']).json<{ hash: string; paths: string[] }[]>();
  t.same(
    dupes.map((d) => d.paths),
    [['/main/docs/readme.txt', '/main/photos/copy-of-readme.txt']],
  );

  const s2 = vdfsOk(home, ['scan', '--json']).json<Summary>();
  t.equal(s2.hashed, 0, 'an unchanged tree is not re-read');
  t.equal(s2.unchanged, 6);

  appendFileSync(join(src, 'docs', 'readme.txt'), 'changed');
  writeFileSync(join(src, 'photos', 'new.txt'), 'new file');
  const s3 = vdfsOk(home, ['scan', '--json']).json<Summary>();
  t.equal(s3.hashed, 2, 'exactly the changed and the added file are hashed');
  t.equal(s3.files, 7);
  const st = vdfsOk(home, ['stat', '/main/docs/readme.txt', '--json']).json<{ hash: string; replicas: unknown[] }>();
  t.equal(st.hash, b3sum(join(src, 'docs', 'readme.txt')));
  t.equal(st.replicas.length, 1, 'no longer a duplicate');
  t.same(vdfsOk(home, ['dupes', '--json']).json(), []);
});

t.test('stat lists every replica across locations', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  for (const n of ['a', 'b']) {
    mkdirSync(join(dir, n));
    writeFileSync(join(dir, n, 'same.bin'), Buffer.alloc(100_000, 42));
  }
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'a', join(dir, 'a')]);
  vdfsOk(home, ['location', 'add', 'b', join(dir, 'b'), '--readonly']);
  vdfsOk(home, ['scan']);
  const st = vdfsOk(home, ['stat', '/a/same.bin', '--json']).json<{
    path: string;
    type: string;
    size: number;
    hash: string;
    replicas: { location: string; path: string; online: boolean }[];
  }>();
  t.equal(st.path, '/a/same.bin');
  t.equal(st.size, 100_000);
  t.equal(st.hash, b3sum(join(dir, 'a', 'same.bin')));
  t.same(
    st.replicas.map((r) => r.path),
    ['/a/same.bin', '/b/same.bin'],
  );
  t.ok(st.replicas.every((r) => r.online));
  const found = vdfsOk(home, ['find', '--hash', st.hash, '--json']).json<string[]>();
  t.same(found, ['/a/same.bin', '/b/same.bin']);
  t.same(vdfsOk(home, ['find', '--name', '*.bin', '--json']).json(), ['/a/same.bin', '/b/same.bin']);
  const locs = vdfsOk(home, ['location', 'ls', '--json']).json<{ name: string; readonly: boolean }[]>();
  t.same(
    locs.map((l) => [l.name, l.readonly]),
    [
      ['a', false],
      ['b', true],
    ],
  );
  const status = vdfsOk(home, ['status', '--json']).json<{ locations: { name: string; files: number }[] }>();
  t.same(
    status.locations.map((l) => [l.name, l.files]),
    [
      ['a', 1],
      ['b', 1],
    ],
  );
  vdfsOk(home, ['location', 'rm', 'b']);
  t.same(vdfsOk(home, ['find', '--hash', st.hash, '--json']).json(), ['/a/same.bin']);
});
