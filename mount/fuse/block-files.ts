import type { BlockHandle, OpContext } from './op-context';

/*
 * Content read through the block cache (a remote file, a blob by hash): READs that fall inside
 * block files verified during this run are answered by the addon from those files. A fresh
 * daemon has verified none, so the blocks ahead of a sequential reader are verified here (read
 * back and hashed, BlockStore.check) and registered before the reader gets to them; the addon
 * says when its READs get near the end of what is verified (blockWake), and the next blocks
 * follow. Before, every block of a re-read went through JS once (docs/read-pipeline.md).
 */

/** Blocks kept verified ahead of a sequential reader at most (the window doubles from 1 per sequential step). */
const MAX_AHEAD = 16;
/**
 * Block files verified at once. A cold re-read waits for the disk (~2.8 ms per 1 MiB block file
 * here, open and read); 64 MiB through a fresh mount: 1 lane 331–350 MB/s, 2: 342–359, 4: 367–383.
 */
const LANES = 4;
/**
 * Checks in flight for all handles together: each holds a 1 MiB buffer of the block pool while
 * it reads and hashes. A handle that finds none free goes on at its reader's next READ in JS.
 */
const MAX_CHECKING = 8;
let checking = 0;
/** A first READ of the head this big starts a stream (as in BlockReader). */
const STREAM_START = 128 * 1024;

/** Content read through the block cache: every block verified in the cache so far is read natively from its file. */
export function registerBlocks(ctx: OpContext, fh: number): void {
  const blocks = ctx.vfs.nativeBlocks(fh);
  if (!blocks || blocks.blockSize <= 0) return;
  ctx.registerBlocks(fh, blocks.blockSize, blocks.size);
  ctx.blockHandles.set(fh, { blocks, known: new Map(), ahead: { end: -1, next: 0, window: 0, busy: new Set(), gap: Infinity } });
  const n = Math.ceil(blocks.size / blocks.blockSize);
  for (let i = 0; i < n; i++) addBlockFile(ctx, fh, i);
}

function addBlockFile(ctx: OpContext, fh: number, i: number): void {
  const bh = ctx.blockHandles.get(fh);
  const file = bh && !bh.known.has(i) ? bh.blocks.file(i) : undefined;
  if (!bh || file === undefined) return;
  ctx.setBlockFile(fh, i, file);
  bh.known.set(i, file);
  let users = ctx.blockUsers.get(file);
  if (!users) ctx.blockUsers.set(file, (users = new Map()));
  users.set(fh, i);
}

/** A handle's block files are no longer read natively (at release). */
export function dropBlockHandle(ctx: OpContext, fh: number): void {
  const bh = ctx.blockHandles.get(fh);
  if (!bh) return;
  ctx.blockHandles.delete(fh);
  ctx.unregisterBlocks(fh);
  for (const file of bh.known.values()) {
    const users = ctx.blockUsers.get(file);
    users?.delete(fh);
    if (users?.size === 0) ctx.blockUsers.delete(file);
  }
}

/** The cache is about to delete a block file: every handle reading it natively stops first (waits for reads in flight). */
export function dropBlockFile(ctx: OpContext, file: string): void {
  const users = ctx.blockUsers.get(file);
  if (!users) return;
  ctx.blockUsers.delete(file);
  for (const [fh, i] of users) {
    ctx.setBlockFile(fh, i, null);
    ctx.blockHandles.get(fh)?.known.delete(i);
  }
}

/**
 * After JS answered a READ of such a handle (`n` bytes at `offset`): the blocks it covered that
 * are now verified files are read natively from now on, and a sequential reader gets the blocks
 * ahead of it verified.
 */
export function registerReadBlocks(ctx: OpContext, fh: number, offset: number, n: number): void {
  const bh = ctx.blockHandles.get(fh);
  if (!bh || n <= 0) return;
  const bs = bh.blocks.blockSize;
  const first = Math.floor(offset / bs);
  const last = Math.floor((offset + n - 1) / bs);
  for (let i = first; i <= last; i++) addBlockFile(ctx, fh, i);
  const a = bh.ahead;
  // The kernel sends a stream's READs a little out of order now and then (two reader threads).
  const sequential = offset === a.end || (a.window > 0 && Math.abs(offset - a.end) <= 4 * bs) || (offset === 0 && n > STREAM_START);
  a.window = sequential ? Math.min(Math.max(1, a.window * 2), MAX_AHEAD) : 0;
  a.end = sequential ? Math.max(a.end, offset + n) : offset + n;
  a.next = sequential ? Math.max(a.next, last + 1) : last + 1;
  if (a.next > a.gap) a.gap = Infinity; // JS read the block that was not cached
  verifyAhead(ctx, fh, bh);
}

/** The addon's READs of handle `fh` reached block `block` (the wake it was given): verify further ahead. */
export function nativeBlocksRead(ctx: OpContext, fh: number, block: number): void {
  const bh = ctx.blockHandles.get(fh);
  if (!bh) return;
  const a = bh.ahead;
  a.next = Math.max(a.next, block + 1);
  a.window = Math.min(Math.max(1, a.window * 2), MAX_AHEAD);
  if (a.next > a.gap) a.gap = Infinity;
  verifyAhead(ctx, fh, bh);
}

/**
 * Verifies the blocks in the reader's window ahead (`next` .. `next + window`), LANES at a time
 * (and MAX_CHECKING for every handle), registering each as it passes. A block not in the cache
 * stops it there (`gap`): the reader's READ of it goes to JS, which fetches it. Once every block
 * of the window is registered, the addon is asked to say when its READs reach the window's
 * second half.
 */
function verifyAhead(ctx: OpContext, fh: number, bh: BlockHandle): void {
  const a = bh.ahead;
  const count = Math.ceil(bh.blocks.size / bh.blocks.blockSize);
  const windowEnd = a.next + a.window;
  const limit = Math.min(windowEnd, count, a.gap);
  let unverified = false;
  for (let j = a.next; j < limit; j++) {
    if (bh.known.has(j)) continue;
    if (bh.blocks.file(j) !== undefined) {
      addBlockFile(ctx, fh, j); // the reader's own read verified it
      continue;
    }
    unverified = true;
    if (a.busy.has(j) || a.busy.size >= LANES || checking >= MAX_CHECKING) continue;
    a.busy.add(j);
    checking++;
    void bh.blocks
      .verify(j)
      .catch(() => false)
      .then((ok) => {
        a.busy.delete(j);
        checking--;
        if (ctx.blockHandles.get(fh) !== bh) return; // released meanwhile
        if (ok) addBlockFile(ctx, fh, j);
        else a.gap = Math.min(a.gap, j);
        verifyAhead(ctx, fh, bh);
      });
  }
  if (unverified || limit !== windowEnd || limit >= count || a.window === 0) return;
  const reached = ctx.blockWake(fh, Math.max(a.next, windowEnd - Math.ceil(a.window / 2)));
  if (reached >= 0) nativeBlocksRead(ctx, fh, reached);
}
