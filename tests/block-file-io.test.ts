import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNativeFuse } from '../core/native-addon';

// The block cache's whole-file I/O in the native addon (mount/fuse/native/file-io.c): one pool
// task per block file. A block file is never a link and never written over, whatever was
// planted under its name.

const addon = loadNativeFuse().addon;

t.test('readFileInto and writeNewFile: exact bytes, O_EXCL, no links followed, errors as -errno', async (t) => {
  if (!addon?.readFileInto || !addon.writeNewFile) return t.fail('the native addon is built with readFileInto and writeNewFile');
  const dir = mkdtempSync(join(tmpdir(), 'vdfs-fio-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 255));
  const f = join(dir, 'block');
  t.equal(await addon.writeNewFile(f, data, 0o600), 0, 'written');
  t.same(readFileSync(f), data, 'the file holds exactly the buffer');
  t.equal(statSync(f).mode & 0o777, 0o600, 'mode 0600');
  t.equal(await addon.writeNewFile(f, Buffer.from('other'), 0o600), -17, 'an existing file is never written over (EEXIST)');
  t.same(readFileSync(f), data, 'and is unchanged');

  const into = Buffer.alloc(data.length + 10, 0xee);
  t.equal(await addon.readFileInto(f, into, data.length), data.length, 'whole file read');
  t.same(into.subarray(0, data.length), data, 'exact bytes');
  t.equal(into[data.length], 0xee, 'nothing written past length');
  t.equal(await addon.readFileInto(f, into, 1000), 1000, 'a shorter length reads that much only');
  writeFileSync(f, data.subarray(0, 100));
  t.equal(await addon.readFileInto(f, into, 5000), 100, 'a short file gives what it has (the caller sees it is short)');
  t.equal(await addon.readFileInto(join(dir, 'missing'), into, 10), -2, 'missing: -ENOENT');

  const outside = join(dir, 'outside');
  writeFileSync(outside, 'secret');
  const link = join(dir, 'planted');
  symlinkSync(outside, link);
  t.ok((await addon.readFileInto(link, into, 6)) < 0, 'a planted link is not read through');
  t.ok((await addon.writeNewFile(link, Buffer.from('x'), 0o600)) < 0, 'nor written through');
  t.equal(readFileSync(outside, 'utf8'), 'secret', 'the link target is untouched');
  t.throws(() => addon.readFileInto!(f, into, into.length + 1), 'a length past the buffer is refused');
});
