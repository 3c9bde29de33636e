import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { b3sumMany, tempDir, vdfsAsync, vdfsOk } from './helpers/cli';
import { startMount, type RunningMount } from './helpers/mount';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startS3Server, type S3TestServer } from './helpers/s3-server';
import { filesBytesAtOnce } from './helpers/test-provider';

// Read-ahead of the next files of a folder a reader walks (#17 item 3), through a real daemon,
// FUSE mount and s3rver, behind a proxy that records which object every GET asked for. Files are
// read with async fs calls: the proxy runs in this process and must keep answering meanwhile.

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 100 * KiB;
/** Files fetched ahead by default (FOLDER_AHEAD_DEFAULTS.files). */
const AHEAD = 8;

let s3: S3TestServer;
let proxy: FaultProxy;
const gets = new Map<string, number>();
const originals = new Map<string, Buffer>();

const name = (prefix: string, i: number) => `${prefix}${String(i).padStart(5, '0')}.jpg`;

/** The object a GET asks for (path-style URL), or undefined for anything else (listings, HEADs). */
function keyOf(req: IncomingMessage, bucket: string): string | undefined {
  if (req.method !== 'GET' || req.url!.includes('list-type')) return undefined;
  const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
  return path.startsWith(`/${bucket}/`) ? path.slice(bucket.length + 2) : undefined;
}

function recordGets(): void {
  proxy.inject(
    { kind: 'delay', ms: 0 },
    {
      times: Infinity,
      match: (req) => {
        const k = keyOf(req, s3.bucket);
        if (k) gets.set(k, (gets.get(k) ?? 0) + 1);
        return false;
      },
    },
  );
}

async function seedFolder(folder: string, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const data = randomBytes(SIZE);
    originals.set(`${folder}/${name(prefix, i)}`, data);
    await s3.put(`${folder}/${name(prefix, i)}`, data);
  }
}

/** Polls (no fixed sleep) until `cond` holds; fails with `what` after a generous deadline. */
async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; GETs: ${JSON.stringify([...gets])}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function setupHome(t: Parameters<typeof tempDir>[0], extra: [string, string][] = []): Promise<{ home: string; mnt: string; dir: string }> {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  vdfsOk(home, ['init', '--name', 'folder-ahead']);
  for (const [k, v] of extra) vdfsOk(home, ['config', 'set', k, v]);
  vdfsOk(home, ['location', 'add', 'cloud', s3.uri('', proxy.endpoint)]);
  await vdfsAsync(home, ['scan', 'cloud']);
  return { home, mnt: join(dir, 'mnt'), dir };
}

/** Reads `rels` through the mount one after another, writes each to `out` and checks it with b3sum against the original. */
async function readChecked(t: Test, mnt: string, out: string, rels: string[], afterEach?: () => void): Promise<void> {
  const got: string[] = [];
  const want: string[] = [];
  for (const rel of rels) {
    const b = await readFile(join(mnt, 'cloud', rel));
    afterEach?.();
    const f = join(out, `${got.length}-got`);
    const o = join(out, `${got.length}-orig`);
    writeFileSync(f, b);
    writeFileSync(o, originals.get(rel)!);
    got.push(f);
    want.push(o);
  }
  const sums = b3sumMany([...got, ...want]);
  const bad = rels.filter((_, i) => sums.get(got[i]) !== sums.get(want[i]));
  t.same(bad, [], `${rels.length} files read byte-exact (b3sum)`);
}

t.before(async () => {
  s3 = await startS3Server();
  proxy = await startFaultProxy(s3.endpoint);
  await seedFolder('photos', 'p', 40);
  await seedFolder('other', 'q', 20);
  await seedFolder('sentinel', 's', 12);
  await seedFolder('small-cache', 'c', 30);
  recordGets();
});
t.teardown(async () => {
  await proxy?.close();
  await s3?.cleanup();
});

t.test('walking a folder in listing order fetches the next files ahead, each file fetched once, byte-exact', async (t) => {
  const { home, mnt, dir } = await setupHome(t);
  const m: RunningMount = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const p = (i: number) => `photos/${name('p', i)}`;

  await readChecked(t, mnt, dir, [p(0), p(1), p(2)]);
  // Three opens in listing order: the next AHEAD files are fetched without anyone reading them.
  await until(() => Array.from({ length: AHEAD }, (_, k) => p(3 + k)).every((k) => gets.has(k)), `GETs of ${p(3)}..${p(2 + AHEAD)}`);
  t.notOk(gets.has(p(3 + AHEAD)), `no further than ${AHEAD} files ahead of the reader`);

  // The reader goes on through the whole folder: what was fetched ahead is served from the cache.
  await readChecked(
    t,
    mnt,
    dir,
    Array.from({ length: 37 }, (_, k) => p(3 + k)),
  );
  const counts = Array.from({ length: 40 }, (_, i) => gets.get(p(i)) ?? 0);
  t.same(counts, Array(40).fill(1), 'every file of the folder was fetched exactly once (ahead, or by the reader when it got there first)');
});

t.test('an open out of listing order cancels what was queued; random opens fetch nothing ahead', async (t) => {
  const { home, mnt, dir } = await setupHome(t);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const q = (i: number) => `other/${name('q', i)}`;
  const s = (i: number) => `sentinel/${name('s', i)}`;
  // Hold the first fetches ahead at the server, so the rest stay queued behind them.
  const held = new Set([q(3), q(4), q(5), q(6)]);
  proxy.inject({ kind: 'delay', ms: 4000 }, { times: 4, match: (req) => held.has(keyOf(req, s3.bucket) ?? '') });

  await readChecked(t, mnt, dir, [q(0), q(1), q(2)]);
  await until(() => [...held].every((k) => gets.has(k)), 'the held fetches ahead to reach the server');
  t.notOk(gets.has(q(7)), 'four fetches ahead at once: the next ones wait in the queue');
  // The reader jumps: the pattern is broken, the queue for this folder is dropped.
  await readChecked(t, mnt, dir, [q(15), q(10), q(18)]);
  // A walk of another folder, queued after the cancelled fetches, gets the pool once the held ones finish.
  await readChecked(t, mnt, dir, [s(0), s(1), s(2)]);
  await until(() => Array.from({ length: AHEAD }, (_, k) => s(3 + k)).every((k) => gets.has(k)), 'the sentinel walk fetched ahead', 30_000);
  const other = Array.from({ length: 20 }, (_, i) => gets.get(q(i)) ?? 0);
  const expect = other.map((_, i) => (i <= 6 || i === 10 || i === 15 || i === 18 ? 1 : 0));
  t.notOk(gets.has(s(3 + AHEAD)), 'the sentinel walk stops 8 files ahead');
  t.same(other, expect, 'only the files read and the four fetched before the jump were requested');
});

t.test('the cache limit holds while a folder is fetched ahead', async (t) => {
  const limit = 2 * MiB;
  const { home, mnt, dir } = await setupHome(t, [
    ['cache.maxSize', String(limit)],
    ['cache.memorySize', '0'],
  ]);
  const m = await startMount(home, mnt);
  t.teardown(() => m.stop());
  const c = (i: number) => `small-cache/${name('c', i)}`;
  const blocks = join(home, 'cache', 'blocks');
  let peak = 0;
  await readChecked(t, mnt, dir, [c(0), c(1), c(2)]);
  // With a 2 MiB cache, an eighth of it (256 KiB) is fetched ahead: two of these files.
  await until(() => gets.has(c(3)) && gets.has(c(4)), 'fetches ahead with a small cache');
  await readChecked(
    t,
    mnt,
    dir,
    Array.from({ length: 27 }, (_, k) => c(3 + k)),
    () => (peak = Math.max(peak, filesBytesAtOnce(blocks))),
  );
  t.ok(peak > 0, 'blocks were cached');
  t.ok(peak <= limit, `block files peaked at ${peak} bytes on disk, limit ${limit}`);
  const counts = Array.from({ length: 30 }, (_, i) => gets.get(c(i)) ?? 0);
  t.same(counts, Array(30).fill(1), 'each file fetched once: what was fetched ahead was not evicted before the reader got to it');
});
