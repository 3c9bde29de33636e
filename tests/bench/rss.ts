// daemon.rss: peak resident memory (VmHWM) of a fresh server process after one fixed workload,
// the same workload for every target: FUSE servers get the FUSE workload (daemon.rss), WebDAV
// servers the WebDAV one (daemon.rss.webdav). Runs last: it stops the run's long-lived servers.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { VDFS_BIN } from '../helpers/cli';
import { startMount } from '../helpers/mount';
import { ddRead, measure, peakRssMB, shOk, sleep, type BenchOptions, type Result, type Target } from './lib';
import type { Env, Server } from './env';
import { davCurlArgs, type Dav } from './webdav-request';

/** Read the big file, find over the tree, ls -l the big directory, write and remove a file. */
function fuseWorkload(env: Env, dir: string, writeDir: string): void {
  ddRead(join(dir, env.bigRel), env.bigBytes);
  shOk(`find ${join(dir, 'tree')} -printf '%s %T@\\n' > /dev/null`, { timeoutMs: 600_000 });
  shOk(`ls -l ${join(dir, 'dir10k')} > /dev/null`);
  const f = join(writeDir, 'rss-write.bin');
  shOk(`dd if=/dev/zero of=${f} bs=1M count=${env.sizes.writeMiB} conv=fsync 2>&1 && rm -f ${f}`, { timeoutMs: 600_000 });
}

/** GET the big file, PROPFIND Depth 1 of the big directory, PUT and DELETE a copy of the big file. */
function davWorkload(env: Env, d: Dav): void {
  const c = `curl ${davCurlArgs(d)} -f -o /dev/null`;
  shOk(`${c} ${d.url}${env.bigRel}`, { timeoutMs: 600_000 });
  shOk(`${c} -X PROPFIND -H 'Depth: 1' ${d.url}dir10k/`, { timeoutMs: 600_000 });
  shOk(`${c} -T ${join(env.data, env.bigRel)} ${d.url}${d.putDir}/rss-put.bin && ${c} -X DELETE ${d.url}${d.putDir}/rss-put.bin`, { timeoutMs: 600_000 });
}

/** Peak RSS of `start()`'s process after `work`, then stop it. */
async function fresh(start: () => Promise<{ pid?: number; stop(): Promise<unknown> }>, work: () => void): Promise<number | null> {
  const s = await start();
  try {
    work();
    return peakRssMB(s.pid);
  } finally {
    await s.stop();
  }
}

async function vdfsServe(env: Env, port: number): Promise<{ pid?: number; url: string; stop(): Promise<void> }> {
  const proc = spawn(process.execPath, [VDFS_BIN, '--home', env.home, 'serve', '--webdav', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  env.onCleanup(stop);
  const t0 = Date.now();
  for (;;) {
    const m = /vdfs serving WebDAV at (\S+)/.exec(out);
    if (m) return { pid: proc.pid, url: m[1].replace(/\/?$/, '/'), stop };
    if (proc.exitCode !== null || Date.now() - t0 > 60_000) {
      await stop();
      throw new Error(`vdfs serve --webdav did not come up: ${out}`);
    }
    await sleep(50);
  }
}

export async function rssBench(env: Env, o: BenchOptions, ports: { vdfs: number; rclone: number }): Promise<Result[]> {
  // Free the mount points and the home: every target below is a fresh process.
  for (const s of [env.rcOff, env.rcFull, env.rcDav]) await s?.stop();
  await env.vdfs?.mount.stop();
  const wb = join(env.data, 'wb');
  const fuse: Target[] = [
    {
      name: 'vdfs',
      run: () =>
        fresh(
          async () => {
            const mnt = join(env.root, 'mnt-rss');
            mkdirSync(mnt, { recursive: true });
            const m = await startMount(env.home, mnt, [], 60_000);
            env.onCleanup(async () => {
              await m.stop();
            });
            return { pid: m.proc.pid, stop: () => m.stop() };
          },
          () => fuseWorkload(env, join(env.root, 'mnt-rss'), join(env.root, 'mnt-rss', 'w')),
        ),
    },
  ];
  if (!env.skip.has('rclone')) {
    for (const mode of ['off', 'full'] as const) {
      let srv: Server | undefined;
      fuse.push({
        name: `rclone-${mode}`,
        run: () =>
          fresh(
            async () => (srv = (await env.startRcloneMount(mode))!),
            () => fuseWorkload(env, srv!.mnt!, join(srv!.mnt!, 'wb')),
          ),
      });
    }
  }
  const work = `dd of the ${env.sizes.bigMiB} MiB file, find over ${env.treeFiles} files, ls -l of ${env.sizes.dirEntries} entries, a ${env.sizes.writeMiB} MiB write`;
  const out = [
    await measure(
      o,
      {
        name: 'daemon.rss',
        unit: 'MB',
        better: 'lower',
        cache: 'warm',
        note: `peak RSS (VmHWM) of a fresh FUSE server process (vdfs mount without WebDAV, rclone mount) after the same workload: ${work}`,
      },
      fuse,
    ),
  ];

  const dav: Target[] = [
    {
      name: 'vdfs',
      run: () => {
        let s: { url: string } | undefined;
        return fresh(
          async () => (s = await vdfsServe(env, ports.vdfs)),
          () => davWorkload(env, { name: 'vdfs', url: s!.url, putDir: 'w', finalDir: join(env.data, 'w'), auth: env.webdavAuth() }),
        );
      },
    },
  ];
  if (!env.skip.has('rclone')) {
    let s: Server | undefined;
    dav.push({
      name: 'rclone',
      run: () =>
        fresh(
          async () => (s = (await env.startRcloneDav(ports.rclone))!),
          () => davWorkload(env, { name: 'rclone', url: s!.url!, putDir: 'wb', finalDir: wb }),
        ),
    });
  }
  out.push(
    await measure(
      o,
      {
        name: 'daemon.rss.webdav',
        unit: 'MB',
        better: 'lower',
        cache: 'warm',
        note: `peak RSS (VmHWM) of a fresh WebDAV server process (vdfs serve --webdav, rclone serve webdav) after the same workload: GET of the ${env.sizes.bigMiB} MiB file, PROPFIND Depth 1 of ${env.sizes.dirEntries} entries, PUT and DELETE of the big file (Apache is left out: it serves from several processes)`,
      },
      dav,
    ),
  );
  return out;
}
