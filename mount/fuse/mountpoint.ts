import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { FsError, toFsError } from '../../core/fs-error';

/**
 * The mount point is a place other users may reach first: the default one lives under /tmp,
 * where anyone can create `/tmp/vdfs-$UID` before we do and keep a way in (a symlink to one
 * of our folders, or a directory they own and can swap). And stale-mount recovery
 * (`fusermount -uz` after a kill -9) must never detach a mount that is not ours.
 */

/** The fsname and subtype vdfs mounts with: /proc/self/mountinfo shows `fuse.vdfs` and `vdfs`. */
export const FS_TYPE = 'fuse.vdfs';
export const FS_SOURCE = 'vdfs';

/** One line of /proc/self/mountinfo, the fields we need. */
export interface MountInfo {
  mountpoint: string;
  fstype: string;
  source: string;
  superOptions: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** What is mounted at `mountpoint` (the last mount wins), from /proc/self/mountinfo; undefined when nothing. */
export async function mountAt(mountpoint: string): Promise<MountInfo | undefined> {
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const target = resolve(mountpoint);
  let found: MountInfo | undefined;
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    if (f.length < 10 || unescape(f[4]) !== target) continue;
    const sep = f.indexOf('-', 6);
    if (sep < 0) continue;
    found = { mountpoint: target, fstype: f[sep + 1] ?? '', source: unescape(f[sep + 2] ?? ''), superOptions: f[sep + 3] ?? '' };
  }
  return found;
}

/** A vdfs FUSE mount made by this user: the only kind stale-mount recovery may detach. */
export function isOurs(m: MountInfo, uid = process.getuid?.()): boolean {
  if (m.fstype !== FS_TYPE || m.source !== FS_SOURCE) return false;
  const u = /(?:^|,)user_id=(\d+)(?:,|$)/.exec(m.superOptions);
  return !!u && uid !== undefined && Number(u[1]) === uid;
}

/**
 * Detaches a stale mount left at `mountpoint` by one of our daemons (kill -9), and nothing
 * else. Throws EBUSY when something that is not ours is mounted there.
 */
export async function recoverStaleMount(mountpoint: string): Promise<'none' | 'recovered'> {
  const m = await mountAt(mountpoint);
  if (!m) return 'none';
  if (!isOurs(m))
    throw new FsError(
      'EBUSY',
      `${m.mountpoint} already has a mount that is not a vdfs mount of yours (${m.fstype} from ${m.source}); leaving it alone: unmount it or pick another mount point`,
    );
  await new Promise<void>((res) => execFile('fusermount', ['-uz', m.mountpoint], () => res()));
  return 'recovered';
}

/**
 * Checks that `dir` is a real directory (not a symlink) owned by us that nobody else can
 * write to; `create` makes it (0700, parents too) when missing. Throws EACCES with the reason
 * (another user's, a symlink, writable by others), ENOTDIR.
 */
export async function checkOwnedDir(dir: string, what: string, create: boolean): Promise<void> {
  if (create)
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 }).catch((err) => {
      throw toFsError(err, `create ${what} ${dir}`);
    });
  const st = await fsp.lstat(dir).catch((err) => {
    throw toFsError(err, `${what} ${dir}`);
  });
  const uid = process.getuid?.();
  const hint = 'another user may have created it to get into your mount; remove it or pick another place (--mount DIR)';
  if (st.isSymbolicLink()) throw new FsError('EACCES', `${what} ${dir} is a symlink; refusing to mount through it (${hint})`);
  if (!st.isDirectory()) throw new FsError('ENOTDIR', `${what} ${dir} is not a directory`);
  if (uid !== undefined && st.uid !== uid) throw new FsError('EACCES', `${what} ${dir} is owned by uid ${st.uid}, not by you (uid ${uid}) (${hint})`);
  if ((st.mode & 0o022) !== 0) throw new FsError('EACCES', `${what} ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}) (${hint}, or chmod go-w it)`);
}
