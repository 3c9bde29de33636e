import t from 'tap';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { BlockCache } from '../cache/block-cache';
import { openCacheStore } from '../index/cache-store';
import { tempDir, vdfs, vdfsOk } from './helpers/cli';
import { startWebdavServer } from './helpers/webdav';

// Issue 12 item 10: vdfs state is private (files 0600, directories 0700) on creation and when an
// older home is opened, and cleaning the cache never follows a link planted in a shared cache.dir.

const mode = (p: string) => statSync(p).mode & 0o777;
const NOBODY = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());

t.test('a new home is private, including the index WAL of a running daemon', async (t) => {
  const old = process.umask(0o022); // the usual umask: without explicit modes files would be 0644
  t.teardown(() => {
    process.umask(old);
  });
  const srv = await startWebdavServer(t, { seed: (d) => writeFileSync(join(d, 'a.txt'), 'a') });
  const h = srv.home;
  for (const d of ['', 'keys', 'staging', 'cache']) t.equal(mode(join(h, d)), 0o700, `${d || 'home'}/ is 0700`);
  for (const f of ['config.json', 'index.db', 'keys/node.key', 'keys/node.crt']) t.equal(mode(join(h, f)), 0o600, `${f} is 0600`);
  // The daemon holds the index open in WAL mode: -wal and -shm exist now.
  for (const f of ['index.db-wal', 'index.db-shm']) {
    t.ok(existsSync(join(h, f)), `${f} exists while the daemon runs`);
    t.equal(mode(join(h, f)), 0o600, `${f} is 0600`);
  }
  for (const f of ['index.db', 'index.db-wal', 'index.db-shm'].map((x) => join(h, 'cache', x)).filter(existsSync)) t.equal(mode(f), 0o600, `cache ${f} is 0600`);
});

t.test('an existing home made world-readable gets its modes fixed when opened', async (t) => {
  const dir = tempDir(t);
  const h = join(dir, 'home');
  vdfsOk(h, ['init', '--name', 'old']);
  // What an older vdfs left behind.
  for (const d of ['', 'keys', 'staging', 'cache']) chmodSync(join(h, d), 0o755);
  for (const f of ['config.json', 'index.db', 'keys/node.key']) chmodSync(join(h, f), 0o644);
  vdfsOk(h, ['location', 'ls']);
  for (const d of ['', 'keys', 'staging', 'cache']) t.equal(mode(join(h, d)), 0o700, `${d || 'home'}/ is 0700 again`);
  for (const f of ['config.json', 'index.db', 'keys/node.key']) t.equal(mode(join(h, f)), 0o600, `${f} is 0600 again`);
});

t.test('cache blocks and their folders are private', async (t) => {
  const old = process.umask(0o022);
  t.teardown(() => {
    process.umask(old);
  });
  const dir = tempDir(t);
  const c = await BlockCache.open({ openIndex: openCacheStore, dir: join(dir, 'cache'), maxBytes: 1 << 20, memoryBytes: 0 });
  await c.put('k1', Buffer.from('block one'));
  await c.close();
  const blocks = join(dir, 'cache', 'blocks');
  const subs = readdirSync(blocks);
  t.ok(subs.length > 0, 'a block was written');
  for (const s of subs) {
    t.equal(mode(join(blocks, s)), 0o700, `blocks/${s}/ is 0700`);
    for (const f of readdirSync(join(blocks, s))) t.equal(mode(join(blocks, s, f)), 0o600, `block ${f} is 0600`);
  }
  t.equal(mode(join(dir, 'cache')), 0o700);
});

t.test('a cache dir in a shared place: planted links are removed, never followed', async (t) => {
  const dir = tempDir(t);
  const h = join(dir, 'home');
  const shared = join(dir, 'shared-cache');
  vdfsOk(h, ['init', '--name', 'shared']);
  vdfsOk(h, ['config', 'set', 'cache.dir', shared]);
  vdfsOk(h, ['cache', 'stats']);
  t.equal(mode(shared), 0o700, 'the cache dir is created 0700');
  // Attacker's plants (made while the dir was group-writable, before vdfs fixed it): the names
  // vdfs cleans at start (tmp, trash-*) and below them, pointing at the victim's files.
  const victim = join(dir, 'victim');
  mkdirSync(join(victim, 'sub'), { recursive: true });
  writeFileSync(join(victim, 'precious.txt'), 'precious');
  writeFileSync(join(victim, 'sub', 'also.txt'), 'also precious');
  chmodSync(shared, 0o777);
  execFileSync('rm', ['-rf', join(shared, 'tmp')]);
  symlinkSync(victim, join(shared, 'tmp'));
  symlinkSync(victim, join(shared, 'trash-aaaaaaaaaaaa'));
  mkdirSync(join(shared, 'trash-bbbbbbbbbbbb'));
  symlinkSync(victim, join(shared, 'trash-bbbbbbbbbbbb', 'inner'));
  symlinkSync(join(victim, 'sub'), join(shared, 'blocks', 'zz'));
  vdfsOk(h, ['cache', 'stats']);
  t.equal(readFileSync(join(victim, 'precious.txt'), 'utf8'), 'precious', 'the target of a planted link survives');
  t.equal(readFileSync(join(victim, 'sub', 'also.txt'), 'utf8'), 'also precious', 'and what is below it');
  t.notOk(existsSync(join(shared, 'tmp')), 'the planted tmp link is gone (block files are written in place: no tmp/ any more)');
  t.notOk(existsSync(join(shared, 'trash-aaaaaaaaaaaa')), 'the planted links are gone');
  t.notOk(existsSync(join(shared, 'trash-bbbbbbbbbbbb')));
  t.notOk(existsSync(join(shared, 'blocks', 'zz')));
  t.equal(mode(shared), 0o700, 'and the cache dir is 0700 again');
  // `vdfs cache clear` renames blocks/ to a trash folder and removes it: same rule.
  // (blocks/ab is one of the 256 fan-out folders the cache made when it opened: replaced by the link.)
  rmSync(join(shared, 'blocks', 'ab'), { recursive: true, force: true });
  symlinkSync(victim, join(shared, 'blocks', 'ab'));
  vdfsOk(h, ['cache', 'clear']);
  t.ok(existsSync(join(victim, 'precious.txt')), 'clear does not follow either');
});

t.test('a cache dir owned by another user is refused with a clear error', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const h = join(dir, 'home');
  const foreign = join(dir, 'foreign-cache');
  mkdirSync(foreign, { mode: 0o777 });
  chownSync(foreign, NOBODY, NOBODY); // pre-created by another user
  vdfsOk(h, ['init', '--name', 'foreign']);
  vdfsOk(h, ['config', 'set', 'cache.dir', foreign]);
  const r = vdfs(h, ['cache', 'stats']);
  t.not(r.code, 0, 'refused');
  t.match(r.stderr, /owned by uid \d+, not by you/, 'says why');
  t.same(readdirSync(foreign), [], 'nothing was written into it');
  // A link to it, planted by that user, is refused the same way.
  const link = join(dir, 'link-cache');
  symlinkSync(foreign, link);
  execFileSync('chown', ['-h', `${NOBODY}:${NOBODY}`, link]);
  vdfsOk(h, ['config', 'set', 'cache.dir', link]);
  t.not(vdfs(h, ['cache', 'stats']).code, 0, 'a foreign link is refused too');
});
