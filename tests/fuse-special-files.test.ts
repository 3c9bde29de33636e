import t from 'tap';
import { get } from 'node:http';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, vdfsOk } from './helpers/cli';
import { sh, startMount } from './helpers/mount';
import { makeNode, pair, startPeerDaemon, waitFor } from './helpers/peer';
import { startS3Server } from './helpers/s3-server';
import { startDriveServer } from './helpers/drive-server';
import { authHeaderFor } from './helpers/webdav';

// FIFOs, sockets and device nodes of a local location (issue 16): indexed by the scan and the
// watcher, made through the mount, shown like the disk shows them; refused where the source
// cannot keep them; never sent to peers.

/** Runs a python snippet (the syscalls as tools make them); its stdout, trimmed. Hard timeout. */
function py(code: string, timeoutMs = 20_000): string {
  const r = sh('python3', ['-c', code], { timeoutMs });
  if (r.code !== 0) throw new Error(`python failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

/** errno name of an os call in python, or "ok". */
function errnoOf(call: string): string {
  return py(`import os, errno, socket, stat\ntry:\n  ${call}\n  print("ok")\nexcept OSError as e:\n  print(errno.errorcode[e.errno])`);
}

/** What stat(1) says of each name: type, mode, owner, device numbers, size. */
function statLines(dir: string, names: string[]): string {
  return sh('stat', ['-c', '%n %F %a %u:%g %t,%T %s', ...names], { cwd: dir }).stdout;
}

function specials(root: string): void {
  for (const c of [
    ['mkfifo', '-m', '0640', join(root, 'pipe')],
    ['mknod', '-m', '0666', join(root, 'null'), 'c', '1', '3'],
    ['mknod', '-m', '0600', join(root, 'loop'), 'b', '7', '300'],
  ]) {
    if (sh(c[0], c.slice(1)).code !== 0) throw new Error(`${c.join(' ')} failed`);
  }
  py(`import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(join(root, 'sock'))})`);
}

function httpGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { Authorization: authHeaderFor(Number(new URL(url).port)) }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('GET hung')));
    req.on('error', reject);
  });
}

t.test('special files on the disk: indexed by the scan and the watcher, shown through the mount as on the disk', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(join(src, 'sub'), { recursive: true });
  chmodSync(dir, 0o755); // the other user below must reach the mount
  writeFileSync(join(src, 'plain.txt'), 'x');
  specials(src);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'm', src]);
  const first = vdfsOk(home, ['scan', '--json']).json<{ files: number; errors: number }>();
  t.same([first.files, first.errors], [1, 0], 'one regular file; the special files are no problem');
  const listed = vdfsOk(home, ['ls', '/m', '--json']).json<{ name: string; type: string; hash: string | null; size: number }[]>();
  t.same(
    listed.map((e) => [e.name, e.type, e.hash === null, e.size]).filter(([n]) => n !== 'plain.txt' && n !== 'sub'),
    [
      ['loop', 'blockdev', true, 0],
      ['null', 'chardev', true, 0],
      ['pipe', 'fifo', true, 0],
      ['sock', 'socket', true, 0],
    ],
    'indexed with their types, never hashed',
  );
  t.match(vdfsOk(home, ['ls', '/m']).stdout, /^p .*pipe$/m, 'vdfs ls shows a FIFO as ls -l does');

  const m = await startMount(home, mnt, ['--allow-other', '--webdav', '127.0.0.1:0']);
  t.teardown(() => m.stop());
  const names = ['pipe', 'null', 'loop', 'sock', 'plain.txt'];
  t.equal(statLines(join(mnt, 'm'), names), statLines(src, names), 'stat: the same types, modes, owners and device numbers as the disk');
  // (Without ls's "total" line: block counts are the one thing the mount computes, from sizes.)
  const ls = (d: string) => sh('ls', ['-ln', '--time-style=+%s.%N', d]).stdout.replace(/^total \d+\n/, '');
  t.equal(ls(join(mnt, 'm')), ls(src), 'ls -l: the same listing, device numbers and times included');
  for (const type of ['p', 'c', 'b', 's']) {
    const find = (root: string) => sh('find', ['.', '-type', type], { cwd: root }).stdout;
    t.equal(find(join(mnt, 'm')), find(src), `find -type ${type}: the same names`);
  }

  // Made through the mount: on the disk with the caller's owner and the device number asked for.
  t.equal(errnoOf(`os.mknod(${JSON.stringify(join(mnt, 'm', 'sub', 'dev'))}, stat.S_IFCHR | 0o640, os.makedev(300, 70000))`), 'ok');
  t.equal(
    sh('stat', ['-c', '%F %a %t,%T', join(src, 'sub', 'dev')]).stdout.trim(),
    'character special file 640 12c,11170',
    'the device node is on the disk (major 300, minor 70000)',
  );
  t.equal(sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'mkfifo', join(mnt, 'm', 'sub', 'theirs')]).code, 1, 'nobody may not write in sub');
  sh('chmod', ['1777', join(src, 'sub')]);
  await waitFor(() => sh('stat', ['-c', '%a', join(mnt, 'm', 'sub')]).stdout.trim() === '1777');
  t.equal(
    sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'mkfifo', '-m', '0600', join(mnt, 'm', 'sub', 'theirs')]).code,
    0,
    'another user makes a FIFO in a world-writable directory',
  );
  t.equal(sh('stat', ['-c', '%F %a %u:%g', join(src, 'sub', 'theirs')]).stdout.trim(), 'fifo 600 65534:65534', 'it is theirs on the disk');
  t.equal(
    sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'mknod', join(mnt, 'm', 'sub', 'dev2'), 'c', '1', '3']).code,
    1,
    'a device by another user: refused (the kernel checks CAP_MKNOD)',
  );
  t.notOk(existsSync(join(src, 'sub', 'dev2')), 'and nothing was made');

  // The watcher: special files made or removed on the disk show up in the mount.
  sh('mkfifo', [join(src, 'later')]);
  t.ok((await waitFor(() => sh('stat', ['-c', '%F', join(mnt, 'm', 'later')]).stdout.trim() === 'fifo', 10_000)) >= 0, 'a FIFO made on the disk appears in the mount');
  sh('rm', [join(src, 'later')]);
  t.ok((await waitFor(() => !existsSync(join(mnt, 'm', 'later')), 10_000)) >= 0, 'and goes when removed');

  // FIFOs: the kernel opens them itself (FUSE never sees the open): processes using the mount
  // meet each other; a process using the disk's path is another pipe.
  const fifo = JSON.stringify(join(mnt, 'm', 'pipe'));
  t.equal(
    py(`import threading, os
got = []
def reader():
    with open(${fifo}, 'rb') as f: got.append(f.read())
th = threading.Thread(target=reader); th.start()
with open(${fifo}, 'wb') as f: f.write(b'through the mount')
th.join(10); print(got[0].decode())`),
    'through the mount',
    'a reader and a writer meet through the mount',
  );
  t.equal(
    py(`import os, errno
r = os.open(${JSON.stringify(join(src, 'pipe'))}, os.O_RDONLY | os.O_NONBLOCK)
try:
    os.open(${fifo}, os.O_WRONLY | os.O_NONBLOCK); print('joined')
except OSError as e: print(errno.errorcode[e.errno])`),
    'ENXIO',
    "a reader on the disk's path is not a reader of the mount's FIFO (documented)",
  );

  // Devices: visible and copyable, not openable (the mount is nodev).
  t.equal(errnoOf(`os.open(${JSON.stringify(join(mnt, 'm', 'null'))}, os.O_RDONLY)`), 'EACCES', 'a device node cannot be opened through the mount (nodev)');
  t.equal(errnoOf(`os.open(${JSON.stringify(join(src, 'null'))}, os.O_RDONLY)`), 'ok', 'while the disk opens it');

  // Sockets: bind through the mount makes the socket file; connect through the mount reaches it.
  const sock = JSON.stringify(join(mnt, 'm', 'live.sock'));
  t.equal(
    py(`import socket
s = socket.socket(socket.AF_UNIX); s.bind(${sock}); s.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect(${sock}); a, _ = s.accept(); c.sendall(b'hi'); print(a.recv(2).decode())`),
    'hi',
    'a unix socket bound and connected through the mount',
  );
  t.equal(sh('stat', ['-c', '%F', join(src, 'live.sock')]).stdout.trim(), 'socket', 'and it is a socket on the disk');

  // Other front ends have no content to serve: WebDAV GET answers at once, never blocks on the FIFO.
  const dav = /vdfs serving WebDAV at (\S+)/.exec(m.output())![1].replace(/\/$/, '');
  t.equal(await httpGet(`${dav}/m/pipe`), 403, 'WebDAV GET of a FIFO: 403 at once');
  t.equal(await httpGet(`${dav}/m/plain.txt`), 200, 'while files are served');
});

t.test('the compat backend (fuse-native) makes and shows special files too', async (t) => {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  mkdirSync(src);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'm', src]);
  vdfsOk(home, ['scan']);
  const m = await startMount(home, mnt, ['--fuse-backend', 'compat']);
  t.teardown(() => m.stop());
  specials(join(mnt, 'm'));
  const names = ['pipe', 'null', 'loop', 'sock'];
  t.equal(statLines(src, names).split('\n').length, 5, 'all four are on the disk');
  t.equal(statLines(join(mnt, 'm'), names), statLines(src, names), 'and look the same through the compat mount');
});

t.test('where special files cannot be kept: write-back folders, S3 and Drive answer EPERM; peers never see them', async (t) => {
  const dir = tempDir(t);
  const s3 = await startS3Server();
  t.teardown(() => s3.cleanup());
  await s3.put('q/obj.txt', 'x');
  const home = join(dir, 'home');
  const wb = join(dir, 'wb');
  mkdirSync(wb);
  vdfsOk(home, ['init']);
  vdfsOk(home, ['location', 'add', 'wb', wb, '--write-back']);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('/q/')]);
  const drive = await startDriveServer();
  t.teardown(() => drive.stop());
  const folder = await drive.mkdir('f');
  await drive.put('x.txt', Buffer.from('x'), { base: folder });
  vdfsOk(home, ['auth', 'gdrive', '--access-token', drive.token, '--refresh-token', drive.refreshToken, '--token-url', `${drive.root}token`, '--client-id', 'test-client']);
  vdfsOk(home, ['location', 'add', 'gd', `gdrive://${folder}?root=${encodeURIComponent(drive.root)}`]);
  vdfsOk(home, ['scan']);
  const mnt = join(dir, 'mnt');
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  for (const loc of ['wb', 'cloud', 'gd']) {
    t.equal(errnoOf(`os.mkfifo(${JSON.stringify(join(mnt, loc, 'f'))})`), 'EPERM', `${loc}: mkfifo is EPERM`);
    t.equal(errnoOf(`os.mknod(${JSON.stringify(join(mnt, loc, 's'))}, stat.S_IFSOCK | 0o644)`), 'EPERM', `${loc}: a socket is EPERM`);
    t.equal(errnoOf(`os.mknod(${JSON.stringify(join(mnt, loc, 'c'))}, stat.S_IFCHR | 0o644, os.makedev(1, 3))`), 'EPERM', `${loc}: a device is EPERM`);
    t.same(
      sh('ls', [join(mnt, loc)])
        .stdout.split('\n')
        .filter((n) => ['f', 's', 'c'].includes(n)),
      [],
      `${loc}: nothing was made`,
    );
  }
  t.same(sh('ls', ['-A', wb]).stdout.trim(), '', 'nothing on the write-back disk either');

  // A peer: the owner's special files are neither in the snapshot nor in the change feed.
  const a = makeNode(dir, 'alpha', { 'f.txt': 'one' });
  specials(a.src);
  vdfsOk(a.home, ['scan']);
  const b = makeNode(dir, 'beta');
  const da = await startPeerDaemon(a.home);
  t.teardown(() => da.stop());
  pair(a.home, b.home, ['docs']);
  vdfsOk(b.home, ['location', 'add', 'adocs', 'peer://alpha/docs']);
  const names = () =>
    vdfsOk(b.home, ['ls', '/adocs', '--json'])
      .json<{ name: string }[]>()
      .map((e) => e.name)
      .sort();
  t.same(names(), ['f.txt'], "the snapshot: only the owner's file, no FIFO, socket or device");
  const db = await startPeerDaemon(b.home);
  t.teardown(() => db.stop());
  sh('mkfifo', [join(a.src, 'pipe2')]);
  writeFileSync(join(a.src, 'g.txt'), 'two');
  t.ok((await waitFor(() => names().includes('g.txt'), 20_000)) >= 0, 'a file added on A after the FIFO reaches B');
  t.same(names(), ['f.txt', 'g.txt'], 'the FIFO made before it does not');
});
