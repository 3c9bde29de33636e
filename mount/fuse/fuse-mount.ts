import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { FsError } from '../../providers/fs-error';
import type { VfsCore } from '../vfs/vfs-core';
import { fuseOps } from './fuse-ops';

// fuse-native has no typings; its option builder cannot express big_writes and drops
// falsy timeouts, so we extend the option string it builds.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const Fuse = require('fuse-native') as new (mnt: string, ops: object, opts: object) => any;

export interface FuseMountOptions {
  allowOther?: boolean;
  /** Seconds the kernel may cache attributes and names (external changes show after this). */
  attrTimeout?: number;
  log: Logger;
}

export interface FuseMount {
  mountpoint: string;
  unmount(): Promise<void>;
}

function callback<T = void>(fn: (cb: (err: Error | null, v?: T) => void) => void): Promise<T> {
  return new Promise((res, rej) => fn((err, v) => (err ? rej(err) : res(v as T))));
}

/** Lazily unmounts whatever is at `mountpoint` (a mount left by a killed daemon). Never throws. */
export function forceUnmount(mountpoint: string): Promise<void> {
  return new Promise((res) => execFile('fusermount', ['-uz', mountpoint], () => res()));
}

/** Is something mounted there? Reads /proc/self/mountinfo, never touches the mount point itself. */
export async function isMounted(mountpoint: string): Promise<boolean> {
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const target = resolve(mountpoint);
  return info.split('\n').some((l) => l.split(' ')[4]?.replace(/\\040/g, ' ') === target);
}

/**
 * Mounts the VFS with fuse-native: big_writes (128 KiB writes instead of 4 KiB),
 * auto_cache (the kernel keeps pages of a file whose mtime/size did not change),
 * attribute/entry caching, and recovery of a stale mount at start.
 * Throws FsError EBUSY/EIO when the mount fails.
 */
export async function mountFuse(vfs: VfsCore, mountpoint: string, opts: FuseMountOptions): Promise<FuseMount> {
  const mnt = resolve(mountpoint);
  if (await isMounted(mnt)) {
    opts.log.warn({ mountpoint: mnt }, 'a mount is already there (a daemon was killed?): unmounting it');
    await forceUnmount(mnt);
  }
  await fsp.mkdir(mnt, { recursive: true }).catch(() => undefined);
  const ttl = opts.attrTimeout ?? 10;
  const extra = ['big_writes', 'auto_cache', 'fsname=vdfs', 'subtype=vdfs', 'default_permissions', `attr_timeout=${ttl}`, `entry_timeout=${ttl}`, 'negative_timeout=1'];

  class VdfsFuse extends Fuse {
    _fuseOptions(): string {
      const base: string = super._fuseOptions();
      return base ? `${base},${extra.join(',')}` : `-o${extra.join(',')}`;
    }
  }

  const fuse = new VdfsFuse(mnt, fuseOps(vfs, opts.log), {
    force: true,
    mkdir: true,
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
    async unmount() {
      if (unmounted) return;
      unmounted = true;
      try {
        await callback((cb) => fuse.unmount(cb));
      } catch (err) {
        opts.log.warn({ err }, 'clean unmount failed; detaching lazily');
        await forceUnmount(mnt);
      }
    },
  };
}
