/**
 * The in-process `Vfs` model test shared by every location kind (tests/vfs-model-*.test.ts):
 * random operation sequences (the ones tests/fuse-model.test.ts sends through the kernel,
 * plus chmod and mtime where the kind keeps them) run against the `Vfs` the daemon builds
 * (`startDaemon` without FUSE) and against a plain directory through `node:fs` (the oracle).
 * Every result and error code must be the same; reads, the final tree and (where there is
 * one) the source itself are compared whole: every byte, sizes, listings, BLAKE3 hashes.
 */
import fc from 'fast-check';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { isFsError } from '../../core/fs-error';
import { blake3Hex } from '../../cache/checksum';
import type { Vfs } from '../../mount/vfs';
import { startDaemon, type Daemon } from '../../app/daemon';
import { Home } from '../../app/home';
import { openBlockStore } from '../../app/block-store';
import { createLogger } from '../../core/log';

const NAMES = ['a', 'b', 'd1', 'd1/x', 'd1/y', 'd2', 'd2/z'];
const name = fc.constantFrom(...NAMES);
const data = fc.uint8Array({ minLength: 0, maxLength: 300_000 }).map((u) => Buffer.from(u));
/** Whole seconds: node:fs takes float seconds, which cannot carry every nanosecond exactly. */
const mtime = fc.integer({ min: 1_000_000_000, max: 2_000_000_000 });

export type Op =
  | { op: 'write'; p: string; data: Buffer }
  | { op: 'append'; p: string; data: Buffer }
  | { op: 'writeAt'; p: string; data: Buffer; at: number }
  | { op: 'read'; p: string }
  | { op: 'mkdir'; p: string }
  | { op: 'rmdir'; p: string }
  | { op: 'unlink'; p: string }
  | { op: 'rename'; p: string; to: string }
  | { op: 'truncate'; p: string; size: number }
  | { op: 'readdir'; p: string }
  | { op: 'stat'; p: string }
  | { op: 'symlink'; p: string; target: string }
  | { op: 'chmod'; p: string; mode: number }
  | { op: 'mtime'; p: string; sec: number };

const MUTATIONS = new Set<Op['op']>(['write', 'append', 'writeAt', 'mkdir', 'rmdir', 'unlink', 'rename', 'truncate', 'symlink', 'chmod', 'mtime']);

/** What a kind of location keeps, so the model knows which operations and fields to compare. */
export interface KindCaps {
  symlinks: boolean;
  /** chmod is kept and getattr shows it ('kept'); getattr shows the mode a file was created with ('shown'). */
  modes: 'kept' | 'shown' | false;
  /** An mtime set with setTimes is kept and getattr shows it. */
  times: boolean;
}

export function opArb(caps: KindCaps): fc.Arbitrary<Op> {
  const ops: fc.Arbitrary<Op>[] = [
    fc.record({ op: fc.constant('write' as const), p: name, data }),
    fc.record({ op: fc.constant('append' as const), p: name, data }),
    fc.record({ op: fc.constant('writeAt' as const), p: name, data, at: fc.integer({ min: 0, max: 2_000_000 }) }),
    fc.record({ op: fc.constant('read' as const), p: name }),
    fc.record({ op: fc.constant('mkdir' as const), p: name }),
    fc.record({ op: fc.constant('rmdir' as const), p: name }),
    fc.record({ op: fc.constant('unlink' as const), p: name }),
    fc.record({ op: fc.constant('rename' as const), p: name, to: name }),
    fc.record({ op: fc.constant('truncate' as const), p: name, size: fc.integer({ min: 0, max: 1_500_000 }) }),
    fc.record({ op: fc.constant('readdir' as const), p: fc.constantFrom('', 'd1', 'd2', 'a') }),
    fc.record({ op: fc.constant('stat' as const), p: name }),
  ];
  if (caps.symlinks) ops.push(fc.record({ op: fc.constant('symlink' as const), p: name, target: fc.constantFrom('a', 'd1/x', '../b') }));
  if (caps.modes === 'kept') ops.push(fc.record({ op: fc.constant('chmod' as const), p: name, mode: fc.constantFrom(0o600, 0o644, 0o640, 0o700, 0o755) }));
  if (caps.times) ops.push(fc.record({ op: fc.constant('mtime' as const), p: name, sec: mtime }));
  return fc.oneof(...ops);
}

export function isMutation(o: Op): boolean {
  return MUTATIONS.has(o.op);
}

export function describe(o: Op): string {
  return JSON.stringify({ ...o, data: 'data' in o ? `${o.data.length} bytes` : undefined });
}

const codeOf = (err: unknown): string => (isFsError(err) ? err.code : ((err as NodeJS.ErrnoException).code ?? String(err)));
const fileMode = () => 0o666 & ~process.umask();
const dirMode = () => 0o777 & ~process.umask();

function statLine(type: string, size: number, mode: number, mtimeSec: number, caps: KindCaps, last?: Op): string {
  let s = type === 'dir' ? 'd' : type === 'symlink' ? 'l' : `f${size}`;
  if (caps.modes && type !== 'symlink') s += ` mode=${(mode & 0o7777).toString(8)}`;
  // The mtime is compared right after it was set (writes stamp "now", which differs).
  if (caps.times && last?.op === 'mtime') s += ` mtime=${mtimeSec}`;
  return s;
}

/** One operation on the oracle (a real directory through node:fs): 'ok', a result, or the error code. */
export async function applyFs(root: string, o: Op, caps: KindCaps): Promise<string> {
  const p = join(root, o.p);
  try {
    switch (o.op) {
      case 'write':
        await fsp.writeFile(p, o.data);
        return 'ok';
      case 'append':
        await fsp.appendFile(p, o.data);
        return 'ok';
      case 'writeAt': {
        const fh = await fsp.open(p, 'r+');
        try {
          await fh.write(o.data, 0, o.data.length, o.at);
        } finally {
          await fh.close();
        }
        return 'ok';
      }
      case 'read': {
        const b = await fsp.readFile(p);
        return `len=${b.length} b3=${blake3Hex(b)}`;
      }
      case 'mkdir':
        await fsp.mkdir(p);
        return 'ok';
      case 'rmdir':
        await fsp.rmdir(p);
        return 'ok';
      case 'unlink':
        await fsp.unlink(p);
        return 'ok';
      case 'rename':
        await fsp.rename(p, join(root, o.to));
        return 'ok';
      case 'truncate':
        await fsp.truncate(p, o.size);
        return 'ok';
      case 'readdir':
        return (await fsp.readdir(p)).sort().join(',');
      case 'stat': {
        const s = await fsp.lstat(p);
        return statLine(s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : 'file', s.size, s.mode, Math.floor(s.mtimeMs / 1000), caps);
      }
      case 'symlink':
        await fsp.symlink(o.target, p);
        return 'ok';
      // chmod(2) follows a symlink, which the kernel resolves before the Vfs sees it: not modelled.
      case 'chmod':
        if ((await fsp.lstat(p)).isSymbolicLink()) return 'skip';
        await fsp.chmod(p, o.mode);
        return 'ok';
      case 'mtime': {
        // utimensat(AT_SYMLINK_NOFOLLOW), as Vfs.setTimes is.
        const s = await fsp.lstat(p);
        await fsp.lutimes(p, s.atime, o.sec);
        const after = await fsp.lstat(p);
        return statLine(after.isDirectory() ? 'dir' : after.isSymbolicLink() ? 'symlink' : 'file', after.size, after.mode, Math.floor(after.mtimeMs / 1000), caps, o);
      }
    }
  } catch (err) {
    return codeOf(err);
  }
}

/** Reads a whole file through the Vfs, in chunks that do not line up with anything. */
export async function readAllVfs(vfs: Vfs, path: string): Promise<Buffer> {
  const fh = await vfs.open(path);
  const parts: Buffer[] = [];
  try {
    for (let off = 0; ;) {
      const b = await vfs.read(fh, off, 131_071);
      if (b.length === 0) break;
      parts.push(b);
      off += b.length;
    }
  } finally {
    await vfs.release(fh);
  }
  return Buffer.concat(parts);
}

async function withHandle(vfs: Vfs, path: string, flags: Parameters<Vfs['open']>[1], fn: (fh: number) => Promise<unknown>): Promise<void> {
  const fh = await vfs.open(path, flags);
  try {
    await fn(fh);
  } finally {
    await vfs.release(fh);
  }
}

class WalkError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

/**
 * Resolves a path below the location's root the way the kernel's lookups do before an
 * operation reaches the Vfs (which takes resolved paths): one component at a time, following
 * symlinks (all but the last unless `followLast`; at most 40), ENOTDIR when a component is not
 * a directory, ENOENT when one is missing (the last may be missing: it is being created).
 */
async function walk(vfs: Vfs, loc: string, start: string[], rel: string, followLast: boolean): Promise<string> {
  const cur = [...start];
  const todo = rel.split('/').filter(Boolean);
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      if (cur.length === 0) throw new WalkError('EACCES');
      cur.pop();
      continue;
    }
    const last = todo.length === 0;
    const path = `${loc}/${[...cur, part].join('/')}`;
    if (last && !followLast) {
      cur.push(part);
      break;
    }
    let type: string;
    try {
      type = (await vfs.getattr(path)).type;
    } catch (err) {
      if (last && codeOf(err) === 'ENOENT') {
        cur.push(part);
        break;
      }
      throw err;
    }
    if (type === 'symlink') {
      if (++hops > 40) throw new WalkError('ELOOP');
      const target = await vfs.readlink(path);
      if (target.startsWith('/')) throw new WalkError('EACCES'); // never generated
      todo.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    if (!last && type !== 'dir') throw new WalkError('ENOTDIR');
    cur.push(part);
  }
  return cur.length ? `${loc}/${cur.join('/')}` : loc;
}

/** The same operation through the Vfs, the way the FUSE front end would send it (paths resolved as the kernel does). */
export async function applyVfs(vfs: Vfs, root: string, o: Op, caps: KindCaps): Promise<string> {
  const cut = root.lastIndexOf('/');
  const loc = root.slice(0, cut);
  const start = [root.slice(cut + 1)];
  const at = (rel: string, follow: boolean) => walk(vfs, loc, start, rel, follow);
  try {
    switch (o.op) {
      case 'write':
        await withHandle(vfs, await at(o.p, true), { write: true, create: true, truncate: true, mode: fileMode() }, (fh) => vfs.write(fh, 0, o.data));
        return 'ok';
      case 'append':
        await withHandle(vfs, await at(o.p, true), { write: true, create: true, append: true, mode: fileMode() }, (fh) => vfs.write(fh, 0, o.data));
        return 'ok';
      case 'writeAt':
        await withHandle(vfs, await at(o.p, true), { write: true }, (fh) => vfs.write(fh, o.at, o.data));
        return 'ok';
      case 'read': {
        const b = await readAllVfs(vfs, await at(o.p, true));
        return `len=${b.length} b3=${blake3Hex(b)}`;
      }
      case 'mkdir':
        await vfs.mkdir(await at(o.p, false), dirMode());
        return 'ok';
      case 'rmdir':
        await vfs.rmdir(await at(o.p, false));
        return 'ok';
      case 'unlink':
        await vfs.unlink(await at(o.p, false));
        return 'ok';
      case 'rename': {
        const from = await at(o.p, false);
        await vfs.rename(from, await at(o.to, false));
        return 'ok';
      }
      case 'truncate':
        await vfs.truncate(await at(o.p, true), o.size);
        return 'ok';
      case 'readdir':
        return (await vfs.readdir(await at(o.p, true)))
          .map((d) => d.name)
          .sort()
          .join(',');
      case 'stat': {
        const a = await vfs.getattr(await at(o.p, false));
        return statLine(a.type, a.size, a.mode, Math.floor(a.mtimeMs / 1000), caps);
      }
      case 'symlink':
        await vfs.symlink(o.target, await at(o.p, false));
        return 'ok';
      case 'chmod': {
        const p = await at(o.p, false);
        if ((await vfs.getattr(p)).type === 'symlink') return 'skip';
        await vfs.chmod(p, o.mode);
        return 'ok';
      }
      case 'mtime': {
        const p = await at(o.p, false);
        await vfs.setTimes(p, 'omit', { sec: o.sec, nsec: 0 });
        const a = await vfs.getattr(p);
        return statLine(a.type, a.size, a.mode, Math.floor(a.mtimeMs / 1000), caps, o);
      }
    }
  } catch (err) {
    return codeOf(err);
  }
}

/** Every entry below `root` of the oracle: `dir/`, `link -> target`, `file SIZE BLAKE3`. */
export async function fsTree(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const n of (await fsp.readdir(join(root, rel))).sort()) {
    const p = rel ? `${rel}/${n}` : n;
    const s = await fsp.lstat(join(root, p));
    if (s.isDirectory()) out.push(`${p}/`, ...(await fsTree(root, p)));
    else if (s.isSymbolicLink()) out.push(`${p} -> ${await fsp.readlink(join(root, p))}`);
    else out.push(`${p} ${s.size} ${blake3Hex(await fsp.readFile(join(root, p)))}`);
  }
  return out;
}

/** The same through the Vfs: listings, getattr sizes, every byte read back, readlink. */
export async function vfsTree(vfs: Vfs, root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const dir = rel ? `${root}/${rel}` : root;
  for (const d of (await vfs.readdir(dir)).sort((x, y) => (x.name < y.name ? -1 : 1))) {
    const p = rel ? `${rel}/${d.name}` : d.name;
    const a = await vfs.getattr(`${root}/${p}`);
    if (a.type === 'dir') out.push(`${p}/`, ...(await vfsTree(vfs, root, p)));
    else if (a.type === 'symlink') out.push(`${p} -> ${await vfs.readlink(`${root}/${p}`)}`);
    else {
      const b = await readAllVfs(vfs, `${root}/${p}`);
      if (b.length !== a.size) out.push(`${p}: getattr says ${a.size} bytes, read gave ${b.length}`);
      out.push(`${p} ${b.length} ${blake3Hex(b)}`);
    }
  }
  return out;
}

/** The index's hashes of the files below `root` (null where not known yet). */
export async function vfsHashes(vfs: Vfs, root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const dir = rel ? `${root}/${rel}` : root;
  for (const d of (await vfs.readdir(dir)).sort((x, y) => (x.name < y.name ? -1 : 1))) {
    const p = rel ? `${rel}/${d.name}` : d.name;
    const a = await vfs.getattr(`${root}/${p}`);
    if (a.type === 'dir') out.push(...(await vfsHashes(vfs, root, p)));
    else if (a.type === 'file') out.push(`${p} ${a.hash}`);
  }
  return out;
}

/** The files of an fsTree() listing as `path hash` lines. */
export function treeHashes(tree: string[]): string[] {
  return tree
    .filter((l) => !l.endsWith('/') && !l.includes(' -> '))
    .map((l) => {
      const [p, , h] = l.split(' ');
      return `${p} ${h}`;
    });
}

/** Polls `fn` until it resolves true (every `stepMs`, hard timeout); returns whether it did. */
export async function pollUntil(fn: () => Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn().catch(() => false)) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Waits until the daemon's upload queue is empty (throws after 30 s) and checks none failed. */
export async function uploadsSettled(t: Test, queue: { counts(): Record<string, number | undefined> }): Promise<void> {
  if (!(await pollUntil(async () => (queue.counts().pending ?? 0) === 0, 30_000))) throw new Error(`uploads still pending after 30 s: ${JSON.stringify(queue.counts())}`);
  t.equal(queue.counts().failed ?? 0, 0, 'no upload failed');
}

export function withTimeout<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timeout (${ms} ms): ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The daemon's Vfs in this process (no FUSE, no WebDAV): what every front end talks to. */
export async function startVfsDaemon(t: Test, homeDir: string, opts: { peer?: boolean } = {}): Promise<{ daemon: Daemon; home: Home }> {
  const home = Home.open(homeDir);
  const blocks = await openBlockStore(home);
  const log = createLogger(process.env.VDFS_TEST_LOG ?? 'error');
  const daemon = await startDaemon(home, { log, blocks, peer: opts.peer ? { host: '127.0.0.1', port: 0 } : undefined });
  t.teardown(async () => {
    // tap reports a teardown's error without its message: say which step threw, and what.
    for (const [step, fn] of [
      ['daemon.stop', () => daemon.stop()],
      ['blocks.close', () => blocks.close()],
      ['home.close', () => home.close()],
    ] as const) {
      // Held (a ref'd timer): a step waiting on something that does not keep the process alive
      // would otherwise end it silently ("test unfinished"); this names the step instead.
      const slow = setTimeout(() => console.error(`startVfsDaemon teardown: ${step} still pending after 10 s`), 10_000);
      try {
        await fn();
      } catch (err) {
        console.error(`startVfsDaemon teardown: ${step} threw:`, err);
        throw err;
      } finally {
        clearTimeout(slow);
      }
    }
  });
  return { daemon, home };
}

/** How one kind of location is driven and checked. */
export interface ModelKind {
  vfs: Vfs;
  /** The location's virtual root, e.g. '/m'. */
  loc: string;
  caps: KindCaps;
  /**
   * Peer locations: the Vfs is read-only, so changes are made on the owner's disk (`ownerDir`)
   * and the Vfs must refuse them itself; after each change the model waits for the Vfs to show it.
   */
  ownerDir?: string;
  /**
   * Resolves when everything written has reached the source (upload queue empty); then returns
   * the source's own tree of `rel` in fsTree()'s format, read behind vdfs's back. Absent for peers.
   */
  sourceTree?(rel: string): Promise<string[]>;
}

export interface ModelOptions {
  runs: number;
  minOps?: number;
  maxOps?: number;
}

/** Runs the model: `runs` random sequences, each in a fresh directory `r<N>` of the location. */
export async function runModel(t: Test, oracle: string, k: ModelKind, o: ModelOptions): Promise<void> {
  let run = 0;
  let compared = 0;
  let sourcesChecked = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb(k.caps), { minLength: o.minOps ?? 8, maxLength: o.maxOps ?? 30, size: 'max' }), async (ops) => {
      run++;
      const rel = `r${run}`;
      const a = `${k.loc}/${rel}`;
      const b = join(oracle, rel);
      await fsp.mkdir(b);
      if (k.ownerDir) {
        await fsp.mkdir(join(k.ownerDir, rel));
        if (!(await pollUntil(async () => (await k.vfs.getattr(a)).type === 'dir', 20_000))) throw new Error(`${a} made on the owner did not show through the Vfs in 20 s`);
      } else await withTimeout(k.vfs.mkdir(a, dirMode()), 'mkdir');
      for (const op of ops) {
        compared++;
        const want = await applyFs(b, op, k.caps);
        let got: string;
        if (k.ownerDir && isMutation(op)) {
          // A peer location refuses every change itself; the owner makes it on its disk.
          const refused = await withTimeout(applyVfs(k.vfs, a, op, k.caps), describe(op));
          const ok = refused === 'EROFS' || (!/^(ok|d|f|l)/.test(want) && refused === want);
          if (!ok) throw new Error(`${describe(op)}: a peer location answered ${refused}, expected EROFS (the oracle: ${want})`);
          got = await applyFs(join(k.ownerDir, rel), op, k.caps);
          const shown = async () => {
            if (JSON.stringify(await vfsTree(k.vfs, a)) !== JSON.stringify(await fsTree(b))) return false;
            // Modes and times too: stat of the names the change touched.
            for (const p of op.op === 'rename' ? [op.p, op.to] : [op.p]) {
              const st: Op = { op: 'stat', p };
              if ((await applyVfs(k.vfs, a, st, k.caps)) !== (await applyFs(b, st, k.caps))) return false;
            }
            return true;
          };
          if (!(await pollUntil(shown, 20_000))) {
            throw new Error(
              `${describe(op)}: the owner's change did not show through the Vfs in 20 s:\nvfs    ${(await vfsTree(k.vfs, a).catch((e) => [String(e)])).join('\n       ')}\noracle ${(await fsTree(b)).join('\n       ')}`,
            );
          }
        } else {
          got = await withTimeout(applyVfs(k.vfs, a, op, k.caps), describe(op));
        }
        if (got !== want) throw new Error(`${describe(op)}: vfs ${got}, real ${want}`);
      }
      const want = await fsTree(b);
      const got = await withTimeout(vfsTree(k.vfs, a), 'tree');
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`trees differ:\nvfs    ${got.join('\n       ')}\noracle ${want.join('\n       ')}`);
      // The index learns each file's BLAKE3 (re-hash after close, upload, owner's scan).
      const hashes = treeHashes(want);
      if (!(await pollUntil(async () => JSON.stringify(await vfsHashes(k.vfs, a)) === JSON.stringify(hashes), 30_000, 100))) {
        throw new Error(`index hashes differ:\nvfs    ${(await vfsHashes(k.vfs, a)).join('\n       ')}\noracle ${hashes.join('\n       ')}`);
      }
      if (k.sourceTree) {
        const src = await withTimeout(k.sourceTree(rel), 'source tree', 60_000);
        if (JSON.stringify(src) !== JSON.stringify(want)) throw new Error(`the source differs:\nsource ${src.join('\n       ')}\noracle ${want.join('\n       ')}`);
        sourcesChecked++;
      }
    }),
    { numRuns: o.runs, ...replayOptions() },
  );
  t.equal(run, o.runs, `${o.runs} random sequences ran`);
  t.ok(compared > o.runs, `${compared} operations compared with the oracle`);
  if (k.sourceTree) t.equal(sourcesChecked, o.runs, "the source held exactly the oracle's tree after every sequence");
}

/** fast-check options from the environment: VDFS_SEED (and VDFS_PATH) replay a reported failure, VDFS_SHRINK=1 shrinks it. */
export function replayOptions(): { endOnFailure: boolean; seed?: number; path?: string } {
  return { endOnFailure: process.env.VDFS_SHRINK !== '1', ...(process.env.VDFS_SEED ? { seed: Number(process.env.VDFS_SEED), path: process.env.VDFS_PATH } : {}) };
}
