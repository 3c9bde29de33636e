import type { Logger } from 'pino';
import { FsError } from '../../core/fs-error';
import { TYPE_MODE_BITS } from '../../core/provider';
import type { Attr, KernelVfs } from '../vfs/types';
import { toErrno } from './errno';
import { openFlags } from './open-flags';

type Cb = (err: number, ...rest: unknown[]) => void;

export function statOf(a: Attr): Record<string, number | Date> {
  return {
    mode: TYPE_MODE_BITS[a.type] | a.mode,
    rdev: a.rdev ?? 0,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    nlink: a.nlink,
    ino: a.ino,
    blksize: 128 * 1024,
    blocks: Math.ceil(a.size / 512),
    atime: a.atimeMs,
    mtime: a.mtimeMs,
    ctime: a.ctimeMs,
  } as unknown as Record<string, number | Date>;
}

/** Runs one async op and answers the kernel exactly once, whatever happens. */
type Run = (op: string, path: string, cb: Cb, fn: () => Promise<unknown[] | void>) => void;
// fuse-native calls each handler with its own arguments; `never[]` accepts every handler's signature.
type Handlers = Record<string, (...args: never[]) => void>;

/** The runner every handler goes through: errors are logged (EIO/EHOSTDOWN as warnings, non-FsErrors as errors) and mapped through errno.ts. */
function runner(log: Logger): Run {
  return (op, path, cb, fn) => {
    let answered = false;
    const answer = (err: number, ...rest: unknown[]) => {
      if (answered) return;
      answered = true;
      try {
        cb(err, ...rest);
      } catch (e) {
        log.error({ err: e, op, path }, 'fuse callback failed');
      }
    };
    try {
      fn().then(
        (rest) => answer(0, ...(rest ?? [])),
        (err: unknown) => {
          if (!(err instanceof FsError)) log.error({ err, op, path }, 'unexpected error in fuse op');
          else if (err.code === 'EIO' || err.code === 'EHOSTDOWN') log.warn({ op, path, code: err.code }, err.message);
          answer(toErrno(err));
        },
      );
    } catch (err) {
      log.error({ err, op, path }, 'fuse op threw');
      answer(toErrno(err));
    }
  };
}

/** Attributes, listings and links. */
function metadataOps(vfs: KernelVfs, run: Run): Handlers {
  return {
    getattr: (path: string, cb: Cb) => run('getattr', path, cb, async () => [statOf(await vfs.getattr(path))]),
    fgetattr: (path: string, _fd: number, cb: Cb) => run('fgetattr', path, cb, async () => [statOf(await vfs.getattr(path))]),
    access: (path: string, _mode: number, cb: Cb) =>
      run('access', path, cb, async () => {
        await vfs.getattr(path);
      }),
    statfs: (path: string, cb: Cb) =>
      run('statfs', path, cb, async () => {
        const s = await vfs.statfs(path);
        const clamp = (n: number) => Math.min(n, 0xffffffff);
        return [{ ...s, blocks: clamp(s.blocks), bfree: clamp(s.bfree), bavail: clamp(s.bavail), files: clamp(s.files), ffree: clamp(s.ffree), favail: clamp(s.ffree) }];
      }),
    readdir: (path: string, cb: Cb) =>
      run('readdir', path, cb, async () => {
        const list = await vfs.readdir(path);
        return [list.map((d) => d.name), list.map((d) => statOf(d.attr))];
      }),
    readlink: (path: string, cb: Cb) => run('readlink', path, cb, async () => [await vfs.readlink(path)]),
  };
}

/** Open files: open, create, read, write, flush, fsync, release. */
function fileOps(vfs: KernelVfs, run: Run): Handlers {
  return {
    open: (path: string, flags: number, cb: Cb) => run('open', path, cb, async () => [await vfs.open(path, openFlags(flags))]),
    create: (path: string, mode: number, cb: Cb) => run('create', path, cb, async () => [await vfs.open(path, { write: true, create: true, mode: mode & 0o7777 })]),
    // read and write answer with the byte count in the first argument (fuse-native's convention).
    read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) =>
      run(
        'read',
        path,
        (err, n) => cb(err < 0 ? err : (n as number)),
        async () => [await vfs.readInto(fd, len === buf.length ? buf : buf.subarray(0, len), pos)],
      ),
    write: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) =>
      run(
        'write',
        path,
        (err, n) => cb(err < 0 ? err : (n as number)),
        async () => [await vfs.write(fd, pos, len === buf.length ? buf : buf.subarray(0, len))],
      ),
    flush: (path: string, fd: number, cb: Cb) => run('flush', path, cb, () => vfs.flush(fd)),
    // fuse-native passes (path, datasync, fd) here, unlike its README.
    fsync: (path: string, _datasync: number, fd: number, cb: Cb) => run('fsync', path, cb, () => vfs.fsync(fd)),
    fsyncdir: (_path: string, _datasync: number, _fd: number, cb: Cb) => cb(0),
    release: (path: string, fd: number, cb: Cb) => run('release', path, cb, () => vfs.release(fd)),
  };
}

/** Changes to the tree and to attributes. */
function treeOps(vfs: KernelVfs, run: Run): Handlers {
  return {
    truncate: (path: string, size: number, cb: Cb) => run('truncate', path, cb, () => vfs.truncate(path, size)),
    ftruncate: (path: string, fd: number, size: number, cb: Cb) => run('ftruncate', path, cb, () => vfs.ftruncate(fd, size)),
    unlink: (path: string, cb: Cb) => run('unlink', path, cb, () => vfs.unlink(path)),
    mkdir: (path: string, mode: number, cb: Cb) => run('mkdir', path, cb, () => vfs.mkdir(path, mode & 0o7777)),
    rmdir: (path: string, cb: Cb) => run('rmdir', path, cb, () => vfs.rmdir(path)),
    rename: (src: string, dest: string, cb: Cb) => run('rename', src, cb, () => vfs.rename(src, dest)),
    // libfuse 2 passes dev_t; fuse-native hands it over as a number (Linux's 32-bit encoding for real devices).
    mknod: (path: string, mode: number, dev: number, cb: Cb) => run('mknod', path, cb, () => vfs.mknod(path, mode, dev)),
    symlink: (target: string, path: string, cb: Cb) => run('symlink', path, cb, () => vfs.symlink(target, path)),
    link: (_src: string, dest: string, cb: Cb) =>
      run('link', dest, cb, async () => {
        throw new FsError('EPERM', 'hard links are not supported: use a symlink or a copy');
      }),
    chmod: (path: string, mode: number, cb: Cb) => run('chmod', path, cb, () => vfs.chmod(path, mode)),
    // The disk's chown on local locations (no caller here: fuse-native's high-level API runs it as the daemon).
    chown: (path: string, uid: number, gid: number, cb: Cb) => run('chown', path, cb, () => vfs.chown(path, uid === 0xffffffff ? -1 : uid, gid === 0xffffffff ? -1 : gid)),
    utimens: (path: string, atime: number, mtime: number, cb: Cb) => run('utimens', path, cb, () => vfs.utimens(path, atime, mtime)),
  };
}

/** Extended attributes: only `user.vdfs.*` are read; none can be set or removed. */
function xattrOps(vfs: KernelVfs, run: Run): Handlers {
  return {
    // ls -l asks every file for security.selinux and POSIX ACLs: answer those without a lookup.
    getxattr: (path: string, name: string, _pos: number, cb: Cb) =>
      name.startsWith('user.vdfs.') ? run('getxattr', path, cb, async () => [await vfs.getxattr(path, name)]) : cb(toErrno(new FsError('ENODATA', name))),
    // Nothing is listed: user.vdfs.* are read by name only (docs/fuse.md, Extended attributes).
    listxattr: (path: string, cb: Cb) =>
      run('listxattr', path, cb, async () => {
        await vfs.getattr(path);
        return [[]];
      }),
    setxattr: (path: string, _name: string, _value: Buffer, _pos: number, _flags: number, cb: Cb) =>
      run('setxattr', path, cb, async () => {
        throw new FsError('ENOTSUP', 'extended attributes cannot be set on vdfs');
      }),
    removexattr: (path: string, _name: string, cb: Cb) =>
      run('removexattr', path, cb, async () => {
        throw new FsError('ENOTSUP', 'extended attributes cannot be removed on vdfs');
      }),
  };
}

/**
 * fuse-native handlers over the VFS core. Every handler catches everything: an exception
 * escaping into fuse-native kills the process and leaves a dead mount. Results and errors
 * are mapped once, through errno.ts.
 */
export function fuseOps(vfs: KernelVfs, log: Logger): Handlers {
  const run = runner(log);
  return { init: (cb: Cb) => cb(0), ...metadataOps(vfs, run), ...fileOps(vfs, run), ...treeOps(vfs, run), ...xattrOps(vfs, run) };
}
