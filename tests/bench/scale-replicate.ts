/**
 * Replication at scale (issue 19), for the scale bench: a new peer receives a location of N
 * entries. The owner's index is generated directly in SQLite (folders of 1,000 files with
 * random-looking hashes, as real content has), then the real owner daemon (`vdfs serve --peer`)
 * serves its snapshot and the real `vdfs location add` on a second home applies it.
 * Measures the wall time, the receiver's CPU and max RSS, and the owner's CPU.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { VDFS_BIN } from '../helpers/cli';
import { makeNode, pair } from '../helpers/peer';
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

/** `folders` × 1,000 files in the owner's `docs` location, in the index only (its folder is gone). */
function fillOwner(a: { home: string; src: string }, folders: number): void {
  rmSync(a.src, { recursive: true });
  const db = new Database(join(a.home, 'index.db'));
  const loc = db.prepare("SELECT id FROM locations WHERE name = 'docs'").pluck().get() as number;
  const root = db.prepare('SELECT id FROM entries WHERE location_id = ? AND parent_id IS NULL').pluck().get(loc) as number;
  db.transaction(() => {
    const dirIns = db.prepare("INSERT INTO entries (location_id, parent_id, name, type, mode, version) VALUES (?, ?, ?, 'dir', 493, ?)");
    const fileIns = db.prepare("INSERT INTO entries (location_id, parent_id, name, type, size, mode, version, hash) VALUES (?, ?, ?, 'file', ?, 420, ?, unhex(?))");
    let n = 0;
    for (let d = 0; d < folders; d++) {
      const id = Number(dirIns.run(loc, root, `d${d}`, `${n}:0:0`).lastInsertRowid);
      for (let f = 0; f < 1000; f++, n++) fileIns.run(loc, id, `IMG_${f}.jpg`, f, `${n}:${f}:0`, createHash('sha256').update(String(n)).digest('hex'));
    }
  })();
  db.close();
}

/** Runs the whole measurement in a fresh directory under `dir` (removed afterwards). Throws when a step fails. */
export async function measureReplication(dir: string, folders: number): Promise<ReplicateFigures> {
  const work = mkdtempSync(join(dir, 'replicate-'));
  try {
    const a = makeNode(work, 'alpha', { 'x.txt': 'x' });
    fillOwner(a, folders);
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
