import t from 'tap';
import { execFileSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum } from './helpers/cli';
import { indexedLocation } from './helpers/mount';
import { openVfsInProcess } from './helpers/vfs-in-process';
import { onLocalDisk } from '../core/raw-file';

// Files of a local location on a local disk are opened, fstat'ed and closed on the JS thread
// (core/raw-file.ts): a pool round trip cost more than those calls. Such an open must never
// block the daemon: a FIFO planted under an indexed file's name is refused at once.

t.test('a FIFO planted under an indexed file is refused at once, without blocking the daemon', async (t) => {
  const { home, src } = indexedLocation(t, 'loc', { 'f.txt': 'indexed content' });
  t.ok(onLocalDisk(src), 'the test location is on a local disk (the synchronous path)');
  const { vfs } = await openVfsInProcess(t, home);
  rmSync(join(src, 'f.txt'));
  execFileSync('mkfifo', [join(src, 'f.txt')]);
  const t0 = Date.now();
  // The name no longer holds the indexed file: the open answers at once, from another replica of
  // the content or with an error; a read of what it opened never reads the FIFO.
  const fh = await vfs.open('/loc/f.txt', {}).catch(() => undefined);
  const read =
    fh === undefined
      ? undefined
      : await vfs.read(fh, 0, 100).then(
          (b) => b.toString(),
          (e: { code?: string }) => e.code,
        );
  t.ok(Date.now() - t0 < 5_000, `answered at once (${Date.now() - t0} ms)`);
  t.ok(read === undefined || read === 'indexed content' || /^E[A-Z]+$/.test(read), `never the FIFO: ${read}`);
  t.ok(statSync(join(src, 'f.txt')).isFIFO(), 'the FIFO is left as it is');
});

t.test('written and read back through descriptors opened and closed on the JS thread', async (t) => {
  const { home, src } = indexedLocation(t, 'loc', {});
  const { vfs, home: h } = await openVfsInProcess(t, home);
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
  const w = await vfs.open('/loc/new.bin', { write: true, create: true, exclusive: true, mode: 0o640 });
  for (let off = 0; off < data.length; off += 65_536) await vfs.write(w, off, data.subarray(off, off + 65_536));
  await vfs.release(w);
  t.equal(statSync(join(src, 'new.bin')).mode & 0o777, 0o640, 'the mode asked for');
  const r = await vfs.open('/loc/new.bin', {});
  const back = Buffer.alloc(data.length);
  let got = 0;
  while (got < back.length) {
    const chunk = await vfs.read(r, got, Math.min(100_000, back.length - got));
    if (chunk.length === 0) break;
    chunk.copy(back, got);
    got += chunk.length;
  }
  await vfs.release(r);
  t.equal(got, data.length, 'every byte read back');
  t.ok(back.equals(data), 'the same bytes');
  const loc = h.locations.get('loc');
  // Hashed on the pool after the close: up to 30 s on a loaded machine (5 s was seen to fall short).
  const hashed = async () => {
    for (let i = 0; i < 1200; i++) {
      const e = h.entries.resolve(loc.id, 'new.bin');
      if (e?.hash) return e.hash;
      await new Promise((res) => setTimeout(res, 25));
    }
    return undefined;
  };
  t.equal(await hashed(), b3sum(join(src, 'new.bin')), "the index's hash of the closed file is b3sum's");
  const fds = () => Number(execFileSync('sh', ['-c', `ls /proc/${process.pid}/fd | wc -l`]).toString());
  const before = fds();
  for (let i = 0; i < 50; i++) await vfs.release(await vfs.open('/loc/new.bin', {}));
  t.ok(fds() <= before, `no descriptor left open after 50 opens and closes (${before} -> ${fds()})`);
});
