import { resolve } from 'node:path';
import { FsError } from '../../core/fs-error';
import type { KernelVfs } from '../vfs/types';
import { fuseOps } from './fuse-ops';
import { checkOwnedDir, mountAt, recoverStaleMount } from './mountpoint';
import { loadNativeFuse } from '../../core/native-addon';
import { mountNative } from './native-mount';
import type { FuseMount, FuseMountOptions } from './mount-options';

export type { FuseBackend, FuseMount, FuseMountOptions } from './mount-options';

// fuse-native has no typings; its option builder cannot express big_writes and drops
// falsy timeouts, so we extend the option string it builds.
/** The part of fuse-native's class this adapter uses. */
interface FuseNative {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
}
const Fuse = require('fuse-native') as new (mnt: string, ops: object, opts: object) => FuseNative;

function callback<T = void>(fn: (cb: (err: Error | null, v?: T) => void) => void): Promise<T> {
  return new Promise((res, rej) => fn((err, v) => (err ? rej(err) : res(v as T))));
}

/**
 * Mounts the VFS with the chosen backend: the native addon by default, fuse-native when asked
 * or when the addon cannot load (with a warning). Recovers a stale mount left by a killed
 * daemon first. Throws FsError EBUSY/EIO when the mount fails.
 */
export async function mountFuse(vfs: KernelVfs, mountpoint: string, opts: FuseMountOptions): Promise<FuseMount> {
  const mnt = resolve(mountpoint);
  // Only a vdfs mount of ours is detached (a daemon was killed); anything else is refused.
  if ((await recoverStaleMount(mnt)) === 'recovered') opts.log.warn({ mountpoint: mnt }, 'a stale vdfs mount of ours was there (a daemon was killed?): detached it');
  // A mount point another user made (or can write to, or swapped for a link) is refused.
  await checkOwnedDir(mnt, 'mount point', true);
  if (opts.backend !== 'compat') {
    const { addon, error } = loadNativeFuse();
    if (addon) return mountNative(addon, vfs, mnt, opts);
    if (opts.backend === 'native') throw new FsError('EIO', `--fuse-backend native: ${error?.message}`);
    opts.log.warn({ err: error?.message }, 'the native FUSE backend is not available: using the compat backend (fuse-native); run .ci/setup to build it');
  }
  return mountCompat(vfs, mnt, opts);
}

/** Polls /proc/self/mountinfo: fuse-native says nothing when the mount is removed from outside. */
function watchMounted(mnt: string, isUnmounting: () => boolean): Promise<void> {
  return new Promise((res) => {
    const timer = setInterval(() => {
      if (isUnmounting()) {
        clearInterval(timer);
        return;
      }
      void mountAt(mnt).then((m) => {
        if (!m && !isUnmounting()) {
          clearInterval(timer);
          res();
        }
      });
    }, 500);
    timer.unref();
  });
}

/**
 * Mounts the VFS with fuse-native: big_writes (128 KiB writes instead of 4 KiB),
 * auto_cache (the kernel keeps pages of a file whose mtime/size did not change),
 * attribute/entry caching. Throws FsError EBUSY/EIO when the mount fails.
 */
async function mountCompat(vfs: KernelVfs, mnt: string, opts: FuseMountOptions): Promise<FuseMount> {
  const extra = [
    'big_writes',
    'auto_cache',
    'fsname=vdfs',
    'subtype=vdfs',
    'default_permissions',
    `attr_timeout=${opts.attrTimeout ?? 10}`,
    `entry_timeout=${opts.entryTimeout ?? 10}`,
    'negative_timeout=1',
  ];

  class VdfsFuse extends Fuse {
    override _fuseOptions(): string {
      const base: string = super._fuseOptions();
      return base ? `${base},${extra.join(',')}` : `-o${extra.join(',')}`;
    }
  }

  const fuse = new VdfsFuse(mnt, fuseOps(vfs, opts.log), {
    // Not fuse-native's own recovery: it runs `fusermount -uz` on any dead mount found there.
    force: false,
    mkdir: false,
    allowOther: !!opts.allowOther,
    // Slow sources must fail on our own timeouts first (EHOSTDOWN/EIO), not fuse-native's.
    timeout: { default: 30_000, read: 120_000, write: 120_000, release: 120_000, fsync: 120_000, flush: 120_000 },
  });
  try {
    await callback((cb) => fuse.mount(cb));
  } catch (err) {
    throw new FsError('EIO', `cannot mount at ${mnt}: ${(err as Error).message} (is /dev/fuse there and fusermount installed? Debian: apt-get install fuse libfuse2)`, err);
  }
  let unmounted = false;
  return {
    mountpoint: mnt,
    backend: 'compat',
    closed: watchMounted(mnt, () => unmounted),
    async unmount() {
      if (unmounted) return;
      unmounted = true;
      try {
        await callback((cb) => fuse.unmount(cb));
      } catch (err) {
        opts.log.warn({ err }, 'clean unmount failed; detaching lazily');
        await recoverStaleMount(mnt).catch(() => undefined);
      }
    },
  };
}
