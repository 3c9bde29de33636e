import { execFile, execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { FsError } from '../../core/fs-error';
import type { KernelVfs } from '../vfs/types';
import type { FuseMount, FuseMountOptions } from './mount-options';
import type { NativeFuse } from '../../core/native-addon';
import { FuseServer, MAX_IO } from './native-server';

/** Two reader threads: measured best on 2 cores (see docs/fuse.md). */
const DEFAULT_THREADS = 2;
const INIT_TIMEOUT_MS = 10_000;

/** The mount's device as `major:minor` (read from mountinfo: a stat of our own mount from this process could hang). */
async function deviceOf(mnt: string): Promise<string | undefined> {
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const line = info
    .split('\n')
    .reverse()
    .find((l) => l.split(' ')[4]?.replace(/\\040/g, ' ') === mnt);
  return line?.split(' ')[2];
}

/**
 * The kernel's read-ahead for the mount (`/sys/class/bdi/MAJ:MIN/read_ahead_kb`). A FUSE
 * mount starts at 128 KiB whatever INIT answers (the kernel only lowers it there), so a
 * sequential reader sends READs of 128 KiB: eight round trips through JS per MiB. Raised to
 * the largest READ we accept (max_pages), a `dd bs=1M` becomes one READ per MiB and the kernel
 * reads ahead a whole block while the reader copies the last one (docs/read-pipeline.md).
 * Random reads are unaffected (the kernel reads ahead only for a sequential pattern). Root
 * only; never throws.
 */
function raiseReadahead(dev: string | undefined, kib: number): void {
  if (!dev) return;
  try {
    writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(kib));
  } catch {
    /* not root, or no sysfs: the kernel's default stays */
  }
}

const FUSECTL = '/sys/fs/fuse/connections';

/**
 * Mounts fusectl where the kernel expects it, if nothing did (systemd does; a bare machine or
 * a container may not): without it a connection cannot be aborted, and a notification stuck
 * in the kernel keeps the daemon from ever exiting. Root only; never throws.
 */
function ensureFusectl(): void {
  try {
    if (
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .some((l) => l.split(' ')[4] === FUSECTL)
    )
      return;
    execFileSync('mount', ['-t', 'fusectl', 'fusectl', FUSECTL], { stdio: 'ignore', timeout: 5000 });
  } catch {
    /* not root, or no fusectl: shutdown then relies on closing the device */
  }
}

/** Aborting the connection fails every request still pending and wakes anything blocked on it. Root only; never throws. */
function abortConnection(conn: string | undefined): void {
  if (!conn) return;
  try {
    writeFileSync(`${FUSECTL}/${conn}/abort`, '1');
  } catch {
    /* gone already, or not root */
  }
}

/**
 * Mounts the VFS through the vdfs FUSE addon (kernel protocol over /dev/fuse). `mnt` is
 * absolute, exists, and nothing is mounted there. Resolves once the kernel's INIT is
 * answered. Throws FsError EIO when mounting fails.
 */
export async function mountNative(addon: NativeFuse, vfs: KernelVfs, mnt: string, opts: FuseMountOptions): Promise<FuseMount> {
  const root = process.getuid?.() === 0;
  if (root) ensureFusectl();
  let fd: number;
  try {
    fd = addon.mount(mnt, 'vdfs', !!opts.allowOther, !root);
  } catch (err) {
    throw new FsError('EIO', `cannot mount at ${mnt}: ${(err as Error).message}`, err);
  }
  const server = new FuseServer(addon, vfs, {
    entryTtl: opts.entryTimeout ?? 10,
    attrTtl: opts.attrTimeout ?? 10,
    negativeTtl: opts.negativeTimeout ?? 10,
    passthrough: opts.passthrough ?? false,
    uring: opts.uring,
    maxNodes: opts.maxNodes,
    log: opts.log,
  });
  const session = server.start(fd, opts.threads ?? DEFAULT_THREADS);
  const dev = await deviceOf(mnt);
  const conn = dev?.split(':')[1];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    server.stop();
    if (root) addon.unmount(mnt);
    else await new Promise<void>((res) => execFile('fusermount', ['-uz', mnt], () => res()));
    abortConnection(conn);
    addon.stop(session);
  };
  let timer: NodeJS.Timeout | undefined;
  const initTimeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new FsError('EIO', `the kernel did not start the FUSE session at ${mnt} within ${INIT_TIMEOUT_MS / 1000} s`)), INIT_TIMEOUT_MS);
  });
  try {
    await Promise.race([server.initialized, initTimeout]);
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  if (root) raiseReadahead(dev, MAX_IO / 1024);
  // The kernel ended the connection by itself (fusermount -u, umount -l, eject): release the device.
  const closed = server.closed.then(async () => {
    if (!stopped) opts.log.warn({ mountpoint: mnt }, 'the mount was removed from outside');
    await stop();
  });
  return { mountpoint: mnt, backend: 'native', closed, server, unmount: stop };
}
