import t from 'tap';
import fc from 'fast-check';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { mountWithOracle } from './helpers/mount';
import { applyFs, describe, fsTree, opArb, replayOptions, withTimeout, type KindCaps } from './helpers/vfs-model';

// Random operation sequences run on the mount and on a plain directory (the oracle, real
// node:fs); every result and errno, and the final tree (every byte), must be the same. The
// operations and the oracle are the in-process model's (tests/helpers/vfs-model.ts): here they
// go through the kernel. Modes and times are the POSIX model's (fuse-posix-model).
const CAPS: KindCaps = { symlinks: true, modes: false, times: false };
const apply = (root: string, o: Parameters<typeof applyFs>[1]) => applyFs(root, o, CAPS);

for (const mode of ['write-through', 'write-back'] as const)
  t.test(`random operation sequences (${mode}): the mount behaves like a real directory`, async (t) => {
    const { mnt, oracle, src } = await mountWithOracle(t, 'm', mode === 'write-back' ? ['--write-back'] : []);
    let run = 0;
    let opsRun = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb(CAPS), { minLength: 8, maxLength: 40, size: 'max' }), async (ops) => {
        run++;
        const a = join(mnt, 'm', `r${run}`);
        const b = join(oracle, `r${run}`);
        await withTimeout(fsp.mkdir(a), 'mkdir', 20_000);
        await fsp.mkdir(b);
        for (const o of ops) {
          opsRun++;
          const got = await withTimeout(apply(a, o), describe(o), 20_000);
          const want = await apply(b, o);
          if (got !== want) throw new Error(`${describe(o)}: mount ${got}, real ${want}`);
        }
        const [ta, tb] = [await withTimeout(fsTree(a), 'tree', 20_000), await fsTree(b)];
        if (JSON.stringify(ta) !== JSON.stringify(tb)) throw new Error(`trees differ:\nmount ${ta.join('\n')}\nreal  ${tb.join('\n')}`);
        // Write-through: the folder beneath holds the same bytes at once (write-back: after its uploads, see vfs-model-write-back).
        if (mode === 'write-through') {
          const ts = await fsTree(join(src, `r${run}`));
          if (JSON.stringify(ts) !== JSON.stringify(tb)) throw new Error(`the backing folder differs:\nsource ${ts.join('\n')}\nreal   ${tb.join('\n')}`);
        }
      }),
      { numRuns: 40, ...replayOptions() },
    );
    t.equal(run, 40, 'forty random sequences ran');
    t.ok(opsRun > 40, `${opsRun} operations compared`);
  });
