/**
 * Replication at scale (issue 19), for the scale bench: a new peer receives a location of N
 * entries. The owner's index is generated directly in SQLite (folders of 1,000 files with
 * random-looking hashes, as real content has), then the real owner daemon (`vdfs serve --peer`)
 * serves its snapshot and the real `vdfs location add` on a second home applies it.
 * Measures the wall time, the receiver's CPU and max RSS, and the owner's CPU.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { VDFS_BIN } from '../helpers/cli';
import { fillSynthetic, makeNode, pair } from '../helpers/peer';
import { sleep } from './lib';

export interface ReplicateFigures {
  entries: number;
  seconds: number;
  receiverCpuS: number;
  receiverMaxRssMB: number;
  ownerCpuS: number;
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Runs the whole measurement in a fresh directory under `dir` (removed afterwards). Throws when a step fails. */
export async function measureReplication(dir: string, folders: number): Promise<ReplicateFigures> {
  const work = mkdtempSync(join(dir, 'replicate-'));
  try {
    const a = makeNode(work, 'alpha', { 'x.txt': 'x' });
    fillSynthetic(a, folders, 1000);
    const owner = spawn(process.execPath, [VDFS_BIN, '--home', a.home, 'serve', '--peer', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    owner.stdout.on('data', (d: Buffer) => (out += d.toString()));
    owner.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
    try {
      const deadline = Date.now() + 120_000;
      while (!/vdfs serving peers at/.test(out)) {
        if (owner.exitCode !== null || Date.now() > deadline) throw new Error(`the owner daemon did not come up: ${out}`);
        await sleep(50);
      }
      const b = makeNode(work, 'beta');
      pair(a.home, b.home, ['docs']);
      const cpu0 = cpuSeconds(owner.pid!);
      const t0 = process.hrtime.bigint();
      const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', process.execPath, VDFS_BIN, '--home', b.home, 'location', 'add', 'adocs', 'peer://alpha/docs', '--json'], {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
        timeout: 1_800_000,
      });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const ownerCpuS = cpuSeconds(owner.pid!) - cpu0;
      if (r.status !== 0) throw new Error(`vdfs location add failed (${r.status}): ${(r.stderr ?? '').slice(-1500)}`);
      const [user, sys, maxKb] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
      const entries = (JSON.parse(r.stdout) as { entries: number }).entries;
      if (entries < folders * 1000) throw new Error(`only ${entries} entries arrived`);
      return { entries, seconds, receiverCpuS: user + sys, receiverMaxRssMB: maxKb / 1024, ownerCpuS };
    } finally {
      owner.kill('SIGTERM');
      const t = Date.now();
      while (owner.exitCode === null && owner.signalCode === null && Date.now() - t < 10_000) await sleep(100);
      if (owner.exitCode === null && owner.signalCode === null) owner.kill('SIGKILL');
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
