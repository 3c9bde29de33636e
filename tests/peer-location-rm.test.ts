import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfs, vdfsOk } from './helpers/cli';
import { makeNode, pair, startPeerDaemon } from './helpers/peer';

t.test('location rm forgets its shares and the invitations naming it: a new folder under the same name is not shared', async (t) => {
  const dir = tempDir(t);
  const a = makeNode(dir, 'alpha', { 'old.txt': 'old\n' });
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  const b = makeNode(dir, 'beta');
  pair(a.home, b.home, ['docs']);
  t.equal(vdfsOk(b.home, ['peer', 'ls', '--json']).json<unknown[]>().length, 1, 'B is paired');
  // A pending invitation that names the location (handed out, not used yet).
  const pending = vdfsOk(a.home, ['peer', 'invite', '--share', 'docs']).stdout.trim();
  const m = /^vdfs peer pair (\S+) (\S+)$/.exec(pending)!;

  vdfsOk(a.home, ['location', 'rm', 'docs']);
  const secret = join(dir, 'secret');
  mkdirSync(secret);
  writeFileSync(join(secret, 'private.txt'), 'not for beta\n');
  vdfsOk(a.home, ['location', 'add', 'docs', secret]);
  vdfsOk(a.home, ['scan']);

  const shares = vdfsOk(a.home, ['peer', 'ls', '--json']).json<{ name: string; shares: string[] }[]>();
  t.same(
    shares.map((p) => [p.name, p.shares]),
    [['beta', []]],
    "A no longer lists docs among beta's shares",
  );
  const add = vdfs(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  t.not(add.code, 0, 'B cannot add the new docs');
  t.match(add.stderr, /no shared location|not shared|does not share/i, `because it is not shared with B (${add.stderr.trim()})`);
  t.notMatch(add.stdout + add.stderr, /private\.txt/, 'nothing of it leaks');

  // The invitation handed out before the rm cannot be used to reach the new folder either.
  const c = makeNode(dir, 'gamma');
  const used = vdfs(c.home, ['peer', 'pair', m[1], m[2]]);
  t.not(used.code, 0, 'the pending invitation that named docs was dropped with it');
  t.match(used.stderr, /unknown or already used pairing token/);
  t.same(
    vdfsOk(a.home, ['peer', 'ls', '--json'])
      .json<{ name: string }[]>()
      .map((p) => p.name),
    ['beta'],
    'gamma did not pair',
  );
});
