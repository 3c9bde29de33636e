import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfs, vdfsOk } from './helpers/cli';

t.test('pin, unpin, whereis, copies, fsck and copy refuse bad input with a clear error and exit status', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  mkdirSync(join(dir, 'src', 'd'), { recursive: true });
  writeFileSync(join(dir, 'src', 'd', 'f.txt'), 'x');
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'src', join(dir, 'src')]);
  vdfsOk(home, ['scan']);
  const cases: [string[], number, RegExp][] = [
    [['pin', '--list', '/src/d'], 2, /--list takes no paths/],
    [['pin', '/.vdfs/by-hash'], 2, /pin a file or folder inside a location/],
    [['unpin', '/src/missing'], 3, /not in the index/],
    [['whereis', '/'], 2, /not an entry/],
    [['copies', '--min', '0'], 2, /--min/],
    [['copies', '/nope'], 3, /no location/],
    [['fsck', '--rate', '-1'], 2, /--rate/],
    [['fsck', '/src/nope'], 3, /not in the index/],
    [['copy', '/src/d/f.txt', '--to', 'bad name'], 2, /location name/],
    [['copy', '/src/d/f.txt', '--to', 'src:../../etc'], 2, /\.\./],
    [['copy', '/src/d/f.txt'], 2, /--to/],
    [['config', 'set', 'cache.pinnedMax', 'lots'], 2, /size/],
    [['config', 'set', 'fuse.attrTimeout', '-1'], 2, /fuse\.attrTimeout: seconds from 0 to 3600/],
    [['config', 'set', 'fuse.entryTimeout', ''], 2, /fuse\.entryTimeout: seconds/],
    [['config', 'set', 'fuse.entryTimeout', '1e9'], 2, /fuse\.entryTimeout: seconds/],
    [['config', 'set', 'fuse.negativeTimeout', '-5'], 2, /fuse\.negativeTimeout: seconds/],
  ];
  for (const [args, code, msg] of cases) {
    const r = vdfs(home, args);
    t.equal(r.code, code, `vdfs ${args.join(' ')}: exit ${code}`);
    t.match(r.stderr, msg, `vdfs ${args.join(' ')}: says why`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  t.same(vdfsOk(home, ['pin', '--list', '--json']).json<{ pins: unknown[] }>().pins, [], 'nothing was pinned along the way');
});
