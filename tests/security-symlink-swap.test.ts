import t from 'tap';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { b3sum, tempDir, vdfs, vdfsOk } from './helpers/cli';
import { startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon, tlsProbe } from './helpers/peer';
import { dav, startWebdavServer } from './helpers/webdav';

// Issue 12 item 4: a directory of a location is swapped for a symlink to a directory outside
// it after the scan (a shared, synced or removable folder lets another party do exactly this).
// Every read and write through the daemon must refuse to go through the link.

const INSIDE = 'inside content 0123456789';
// Same length as INSIDE: a size check alone would not notice the swap.
const SECRET = 'SECRET-OUTSIDE-THE-ROOT!!';

/** d/ (with f.txt) inside `loc`, and `outside` holding a different f.txt. */
function seed(loc: string, outside: string): void {
  mkdirSync(join(loc, 'd'));
  writeFileSync(join(loc, 'd', 'f.txt'), INSIDE);
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, 'f.txt'), SECRET);
}

/** The attacker's move: d/ becomes a symlink to `outside`. Returns the undo. */
function swap(loc: string, outside: string): () => void {
  renameSync(join(loc, 'd'), join(loc, 'd.real'));
  symlinkSync(outside, join(loc, 'd'));
  return () => {
    rmSync(join(loc, 'd'));
    renameSync(join(loc, 'd.real'), join(loc, 'd'));
  };
}

/** Polls until `fn` is true (hard timeout): the daemon's watcher has caught up. */
async function until(fn: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('WebDAV: GET and PUT through a swapped-in symlink are refused', async (t) => {
  const dir = tempDir(t);
  const outside = join(dir, 'outside');
  const srv = await startWebdavServer(t, { seed: (loc) => seed(loc, outside) });
  const { port, locDir } = srv;
  t.equal((await dav(port, 'GET', '/loc/d/f.txt')).text, INSIDE, 'before the swap: the real file');
  // Several rounds: each request goes out right after the swap, before the watcher has seen
  // it, which is the window the attack uses. Between rounds the index settles again.
  for (let round = 0; round < 4; round++) {
    const undo = swap(locDir, outside);
    const [get, put] = await Promise.all([dav(port, 'GET', '/loc/d/f.txt'), dav(port, 'PUT', `/loc/d/evil-${round}`, { body: 'pwned' })]);
    t.not(get.status, 200, `round ${round}: GET refused (${get.status})`);
    t.notMatch(get.text, SECRET, `round ${round}: nothing from outside is served`);
    t.ok(put.status >= 400, `round ${round}: PUT refused (${put.status})`);
    undo();
    await until(async () => (await dav(port, 'GET', '/loc/d/f.txt')).text === INSIDE, 'the index to settle');
  }
  t.same(readdirSync(outside), ['f.txt'], 'nothing was created outside the location');
  t.equal(readFileSync(join(outside, 'f.txt'), 'utf8'), SECRET, 'the outside file is untouched');
});

t.test('FUSE: reads and writes through a swapped-in symlink are refused', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const outside = join(dir, 'outside');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  seed(src, outside);
  vdfsOk(home, ['init', '--name', 'swap']);
  vdfsOk(home, ['location', 'add', 'loc', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const before = statSync(join(outside, 'f.txt'));
  // The attacker's shell stands in d/ (its working directory is the mount's node for d/) before
  // the swap, and uses names relative to it: every access is a request to the daemon for that
  // node, however soon the watcher learns of the swap. A path through the mount's root would,
  // once the watcher has caught up, meet the mount's own symlink d -> outside, which the kernel
  // follows on this machine with the caller's rights (as it would on the disk), without vdfs.
  const attackers = ['at once', 'once the mount shows the link'].map((when, i) => ({ when, ...attackFrom(join(mnt, 'loc', 'd'), join(dir, `go${i}`)) }));
  swap(src, outside);
  for (const a of attackers) {
    if (a.when !== 'at once') await until(async () => lstatSync(join(mnt, 'loc', 'd')).isSymbolicLink(), 'the watcher to see the swap');
    const r = await a.run();
    t.notMatch(r.stdout, SECRET, `${a.when}: nothing from outside was read`);
    t.match(r.stderr, /cat: f\.txt/, `${a.when}: the read was refused`);
    t.same(readdirSync(outside), ['f.txt'], `${a.when}: nothing was created outside the location`);
    const after = statSync(join(outside, 'f.txt'));
    t.equal(readFileSync(join(outside, 'f.txt'), 'utf8'), SECRET, `${a.when}: the outside file is untouched (no write, no truncate)`);
    t.equal(after.mode, before.mode, `${a.when}: its mode is unchanged`);
    t.equal(after.mtimeMs, before.mtimeMs, `${a.when}: its mtime is unchanged`);
  }
});

/**
 * A shell standing in `cwd` (its working directory is taken now, before any swap) that, once
 * `go` exists, tries to read, write, chmod, touch, truncate and rename f.txt (a rename within its
 * folder opens that folder once) and create entries beside it, by names relative to its working directory: every access is a request to the daemon for
 * that node. (A path through the mount's root would, once the watcher has caught up, meet the
 * mount's own symlink d -> outside, which the kernel follows with the caller's rights, as on
 * the disk, without vdfs.)
 */
function attackFrom(cwd: string, go: string): { run: () => Promise<{ stdout: string; stderr: string }> } {
  const script = `while [ ! -e "$1" ]; do sleep 0.02; done; cat f.txt; echo pwned > evil; echo pwned >> f.txt; chmod 600 f.txt; touch -d 2001-01-01 f.txt; truncate -s 1 f.txt; mkdir evil-dir; ln -s x evil-link; mv f.txt moved.txt; true`;
  const shell = spawn('sh', ['-c', script, 'sh', go], { cwd });
  const out = { stdout: '', stderr: '' };
  shell.stdout.on('data', (b: Buffer) => (out.stdout += b.toString()));
  shell.stderr.on('data', (b: Buffer) => (out.stderr += b.toString()));
  const ended = new Promise<void>((resolve) => shell.on('close', () => resolve()));
  const killer = setTimeout(() => shell.kill('SIGKILL'), 60_000);
  return {
    run: async () => {
      writeFileSync(go, '');
      await ended;
      clearTimeout(killer);
      return out;
    },
  };
}

t.test('peer: a blob whose directory was swapped for a symlink is not served from outside', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'd/f.txt': INSIDE });
  const b = makeNode(dir, 'beta');
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'f.txt'), SECRET);
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  pair(a.home, b.home);
  const key = readFileSync(join(b.home, 'keys', 'node.key'), 'utf8');
  const cert = readFileSync(join(b.home, 'keys', 'node.crt'), 'utf8');
  const hash = b3sum(join(a.src, 'd', 'f.txt'));
  const get = async () => (await tlsProbe(da.url, { key, cert, request: `GET /v1/blobs/${hash} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n` })).received;
  t.match(await get(), new RegExp(`^HTTP/1\\.1 200[\\s\\S]*${INSIDE}$`), 'before the swap: served');
  for (let round = 0; round < 4; round++) {
    const undo = swap(a.src, outside);
    const r = await get();
    t.notMatch(r, SECRET, `round ${round}: nothing from outside is served`);
    t.notMatch(r, /^HTTP\/1\.1 2/, `round ${round}: refused`);
    undo();
    await until(async () => /^HTTP\/1\.1 200/.test(await get()), 'the blob to be served again');
  }
});

t.test('scan: a directory swapped for a symlink while the scan walks is never listed', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'OUTSIDE-NAME.txt'), SECRET);
  mkdirSync(src);
  const N = 20;
  for (let i = 0; i < N; i++) {
    mkdirSync(join(src, `d${i}`));
    for (let j = 0; j < 20; j++) writeFileSync(join(src, `d${i}`, `f${j}.txt`), `${i}/${j}`);
    symlinkSync(outside, join(src, `d${i}.link`));
  }
  vdfsOk(home, ['init', '--name', 'walk']);
  vdfsOk(home, ['location', 'add', 'loc', src, '--ignore', '*.link', '--ignore', '*.real']);
  // The attacker: each d<i> in turn becomes the link for 2 ms, then the real directory again.
  const script = `
    const fs = require('node:fs'); const p = (s) => ${JSON.stringify(src)} + '/' + s;
    const spin = (ms) => { const t0 = process.hrtime.bigint(); while (process.hrtime.bigint() - t0 < BigInt(ms * 1e6)); };
    for (;;) for (let i = 0; i < ${N}; i++) {
      try { fs.renameSync(p('d' + i), p('d' + i + '.real')); fs.renameSync(p('d' + i + '.link'), p('d' + i)); spin(2);
            fs.renameSync(p('d' + i), p('d' + i + '.link')); fs.renameSync(p('d' + i + '.real'), p('d' + i)); } catch {}
    }`;
  const attacker = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  t.teardown(() => {
    attacker.kill('SIGKILL');
  });
  const leaked: string[] = [];
  for (let round = 0; round < 15 && leaked.length === 0; round++) {
    const r = vdfs(home, ['scan']);
    t.ok(r.code === 0 || r.code === 1, `scan ${round} ran (exit ${r.code})`);
    const db = new Database(join(home, 'index.db'), { readonly: true });
    try {
      for (const row of db.prepare(`SELECT name FROM entries WHERE name = 'OUTSIDE-NAME.txt'`).all() as { name: string }[]) leaked.push(row.name);
    } finally {
      db.close();
    }
  }
  t.same(leaked, [], 'no name from outside the location was ever indexed');
});
