import t from 'tap';
import fc from 'fast-check';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { mountWithOracle } from './helpers/mount';
import { blake3Hex } from '../cache/checksum';

// Random operation sequences run on the mount and on a plain directory (the oracle, real
// node:fs); every result and errno, and the final tree, must be the same.
const NAMES = ['a', 'b', 'd1', 'd1/x', 'd1/y', 'd2', 'd2/z'];
const name = fc.constantFrom(...NAMES);
const data = fc.uint8Array({ minLength: 0, maxLength: 300_000 }).map((u) => Buffer.from(u));

type Op =
  | { op: 'write'; p: string; data: Buffer }
  | { op: 'append'; p: string; data: Buffer }
  | { op: 'writeAt'; p: string; data: Buffer; at: number }
  | { op: 'read'; p: string }
  | { op: 'mkdir'; p: string }
  | { op: 'rmdir'; p: string }
  | { op: 'unlink'; p: string }
  | { op: 'rename'; p: string; to: string }
  | { op: 'truncate'; p: string; size: number }
  | { op: 'readdir'; p: string }
  | { op: 'stat'; p: string }
  | { op: 'symlink'; p: string; target: string };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('write' as const), p: name, data }),
  fc.record({ op: fc.constant('append' as const), p: name, data }),
  fc.record({ op: fc.constant('writeAt' as const), p: name, data, at: fc.integer({ min: 0, max: 2_000_000 }) }),
  fc.record({ op: fc.constant('read' as const), p: name }),
  fc.record({ op: fc.constant('mkdir' as const), p: name }),
  fc.record({ op: fc.constant('rmdir' as const), p: name }),
  fc.record({ op: fc.constant('unlink' as const), p: name }),
  fc.record({ op: fc.constant('rename' as const), p: name, to: name }),
  fc.record({ op: fc.constant('truncate' as const), p: name, size: fc.integer({ min: 0, max: 1_500_000 }) }),
  fc.record({ op: fc.constant('readdir' as const), p: fc.constantFrom('', 'd1', 'd2', 'a') }),
  fc.record({ op: fc.constant('stat' as const), p: name }),
  fc.record({ op: fc.constant('symlink' as const), p: name, target: fc.constantFrom('a', 'd1/x', '../b') }),
);

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), 20_000))]);
}

async function apply(root: string, o: Op): Promise<string> {
  const p = join(root, o.p);
  try {
    switch (o.op) {
      case 'write':
        await fsp.writeFile(p, o.data);
        return 'ok';
      case 'append':
        await fsp.appendFile(p, o.data);
        return 'ok';
      case 'writeAt': {
        const fh = await fsp.open(p, 'r+');
        try {
          await fh.write(o.data, 0, o.data.length, o.at);
        } finally {
          await fh.close();
        }
        return 'ok';
      }
      case 'read': {
        const b = await fsp.readFile(p);
        return `len=${b.length} b3=${blake3Hex(b)}`;
      }
      case 'mkdir':
        await fsp.mkdir(p);
        return 'ok';
      case 'rmdir':
        await fsp.rmdir(p);
        return 'ok';
      case 'unlink':
        await fsp.unlink(p);
        return 'ok';
      case 'rename':
        await fsp.rename(p, join(root, o.to));
        return 'ok';
      case 'truncate':
        await fsp.truncate(p, o.size);
        return 'ok';
      case 'readdir':
        return (await fsp.readdir(p)).sort().join(',');
      case 'stat': {
        const s = await fsp.lstat(p);
        return `${s.isDirectory() ? 'd' : s.isSymbolicLink() ? 'l' : 'f'}${s.isDirectory() ? '' : s.size}`;
      }
      case 'symlink':
        await fsp.symlink(o.target, p);
        return 'ok';
    }
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

async function tree(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const n of (await fsp.readdir(join(root, rel))).sort()) {
    const p = rel ? `${rel}/${n}` : n;
    const s = await fsp.lstat(join(root, p));
    if (s.isDirectory()) out.push(`${p}/`, ...(await tree(root, p)));
    else if (s.isSymbolicLink()) out.push(`${p} -> ${await fsp.readlink(join(root, p))}`);
    else {
      const b = await fsp.readFile(join(root, p));
      out.push(`${p} ${s.size} ${b.length} ${blake3Hex(b)}`);
    } // every byte, not a prefix
  }
  return out;
}

for (const mode of ['write-through', 'write-back'] as const)
  t.test(`random operation sequences (${mode}): the mount behaves like a real directory`, async (t) => {
    const { mnt, oracle, src } = await mountWithOracle(t, 'm', mode === 'write-back' ? ['--write-back'] : []);
    let run = 0;
    let opsRun = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 8, maxLength: 40, size: 'max' }), async (ops) => {
        run++;
        const a = join(mnt, 'm', `r${run}`);
        const b = join(oracle, `r${run}`);
        await withTimeout(fsp.mkdir(a), 'mkdir');
        await fsp.mkdir(b);
        for (const o of ops) {
          opsRun++;
          const got = await withTimeout(apply(a, o), JSON.stringify({ ...o, data: undefined }));
          const want = await apply(b, o);
          if (got !== want) throw new Error(`${JSON.stringify({ ...o, data: 'data' in o ? o.data.length : undefined })}: mount ${got}, real ${want}`);
        }
        const [ta, tb] = [await withTimeout(tree(a), 'tree'), await tree(b)];
        if (JSON.stringify(ta) !== JSON.stringify(tb)) throw new Error(`trees differ:\nmount ${ta.join('\n')}\nreal  ${tb.join('\n')}`);
        // Write-through: the folder beneath holds the same bytes at once (write-back: after its uploads, see vfs-model-write-back).
        if (mode === 'write-through') {
          const ts = await tree(join(src, `r${run}`));
          if (JSON.stringify(ts) !== JSON.stringify(tb)) throw new Error(`the backing folder differs:\nsource ${ts.join('\n')}\nreal   ${tb.join('\n')}`);
        }
      }),
      { numRuns: 40, endOnFailure: process.env.VDFS_SHRINK !== '1' },
    );
    t.equal(run, 40, 'forty random sequences ran');
    t.ok(opsRun > 40, `${opsRun} operations compared`);
  });
