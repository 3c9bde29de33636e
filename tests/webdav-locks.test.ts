import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VDFS_BIN, vdfsOk } from './helpers/cli';
import { basicAuth, dav, startWebdavServer } from './helpers/webdav';

// Issue 12 item 12: one client held an exclusive infinite lock on a whole location
// forever, and filling the server's lock cap locked everyone else out.
const LOCKINFO = (scope: 'exclusive' | 'shared') =>
  `<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:${scope}/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>attacker</D:owner></D:lockinfo>`;

function addBob(home: string): void {
  const r = spawnSync(process.execPath, [VDFS_BIN, '--home', home, 'webdav', 'user', 'add', 'bob'], { input: 'bob password\n', encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(r.stderr);
}
const BOB = { Authorization: basicAuth('bob', 'bob password') };

t.test('an exclusive depth-infinity lock on a whole location expires, however often it is refreshed', async (t) => {
  const srv = await startWebdavServer(t, {
    seed: (d) => writeFileSync(join(d, 'f.txt'), 'x'),
    beforeServe: (home) => {
      addBob(home);
      vdfsOk(home, ['config', 'set', 'webdav.lockTimeout', '3']);
    },
  });
  const lock = await dav(srv.port, 'LOCK', '/loc', { headers: { Depth: 'infinity', Timeout: 'Infinite' }, body: LOCKINFO('exclusive') });
  const lockedAt = Date.now();
  t.equal(lock.status, 200, 'the attacker locks the whole location');
  t.match(lock.text, /<D:timeout>Second-3<\/D:timeout>/, 'Infinite is cut to the server maximum');
  const token = /<(opaquelocktoken:[^>]+)>/.exec(String(lock.headers['lock-token']))![1]!;
  t.equal((await dav(srv.port, 'PUT', '/loc/f.txt', { headers: BOB, body: 'bob' })).status, 423, 'others are locked out for now');

  // The holder refreshes as fast as it likes, asking for Infinite each time
  let refreshing = true;
  const refreshes: number[] = [];
  const refresher = (async () => {
    while (refreshing) {
      refreshes.push((await dav(srv.port, 'LOCK', '/loc', { headers: { Timeout: 'Infinite', If: `(<${token}>)` } })).status);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  let put = 0;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    put = (await dav(srv.port, 'PUT', '/loc/f.txt', { headers: BOB, body: 'bob' })).status;
    if (put !== 423) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const heldMs = Date.now() - lockedAt;
  refreshing = false;
  await refresher;
  t.equal(put, 204, `bob can write again after ${heldMs} ms`);
  t.ok(heldMs >= 2500 && heldMs < 10_000, `the lock lived about its 3 s maximum (${heldMs} ms), refreshes notwithstanding`);
  t.ok(refreshes.filter((s) => s === 200).length >= 5, `it was refreshed ${refreshes.filter((s) => s === 200).length} times`);
  t.equal((await dav(srv.port, 'LOCK', '/loc', { headers: { Timeout: 'Infinite', If: `(<${token}>)` } })).status, 412, 'the expired lock cannot be refreshed');

  // A lock on an ordinary file is refreshed as clients expect
  const file = await dav(srv.port, 'LOCK', '/loc/f.txt', { headers: { Depth: '0', Timeout: 'Second-999999' }, body: LOCKINFO('exclusive') });
  t.match(file.text, /<D:timeout>Second-3<\/D:timeout>/, 'a long timeout is cut to the maximum');
  const ft = /<(opaquelocktoken:[^>]+)>/.exec(String(file.headers['lock-token']))![1]!;
  const started = Date.now();
  while (Date.now() - started < 4500) {
    t.equal((await dav(srv.port, 'LOCK', '/loc/f.txt', { headers: { Timeout: 'Second-3', If: `(<${ft}>)` } })).status, 200, 'refreshed');
    await new Promise((r) => setTimeout(r, 700));
  }
  t.equal((await dav(srv.port, 'PUT', '/loc/f.txt', { headers: BOB, body: 'bob' })).status, 423, 'a file lock kept alive by refreshes still holds');
});

t.test('one principal filling its lock cap does not lock out anyone else', async (t) => {
  const srv = await startWebdavServer(t, { seed: (d) => mkdirSync(join(d, 'many')), beforeServe: addBob });
  const statuses: number[] = [];
  for (let i = 0; i < 505; i++)
    statuses.push((await dav(srv.port, 'LOCK', `/loc/many/f${i}`, { headers: { Depth: '0', Timeout: 'Infinite' }, body: LOCKINFO('exclusive') })).status);
  t.equal(statuses.filter((s) => s === 201).length, 500, '500 locks for one principal');
  t.same(statuses.slice(500), [503, 503, 503, 503, 503], 'then refused (503)');
  const bob = await dav(srv.port, 'LOCK', '/loc/bob.txt', { headers: { ...BOB, Depth: '0' }, body: LOCKINFO('exclusive') });
  t.equal(bob.status, 201, 'another user still gets a lock');
  const shared = await dav(srv.port, 'LOCK', '/loc/many/f0', { headers: { ...BOB, Depth: '0' }, body: LOCKINFO('shared') });
  t.equal(shared.status, 423, "the attacker's exclusive locks still hold, within their time");
});
