import t from 'tap';
import { BlockReader } from '../mount/vfs/block-reader';
import { BlockRun } from '../mount/vfs/block-run';

// A front end that reads verified block files itself (FUSE) answers some READs of a stream
// without the handle's reader seeing them: blocks streamed ahead and already written to the
// cache are registered with the addon. The next READ that reaches the reader is then several
// blocks past the last one it saw. It must go on with the stream, not be taken for a seek (which
// cancelled the run and fetched the next blocks one request each: seen in CI as two extra
// requests for 74 blocks in tests/peer-blob-stream.test.ts).

const BS = 256 * 1024;
const BLOCKS = 74;

/** Blocks come from one paced stream per run (as streamWindow feeds a BlockRun); `block` is a request of its own. */
class StreamingReader extends BlockReader {
  readonly singles: number[] = [];
  readonly runs: Array<[number, number]> = [];
  readonly cachedBlocks = new Set<number>();

  constructor(native: boolean) {
    super(BLOCKS * BS, BS);
    this.cachedAheadElsewhere = native;
  }

  protected block(i: number): Promise<Buffer> {
    this.singles.push(i);
    return Promise.resolve(Buffer.alloc(BS, i & 0xff));
  }

  protected override cached(i: number): boolean {
    return this.cachedBlocks.has(i);
  }

  protected override streamRun(first: number, end: number): BlockRun {
    this.runs.push([first, end]);
    const run = new BlockRun(first, end);
    void (async () => {
      for (let i = first; i <= end; i++) {
        await new Promise((r) => setImmediate(r));
        run.settle(i, Buffer.alloc(BS, i & 0xff));
        this.cachedBlocks.add(i); // written to the cache as it arrives (BlockCache.keep)
        const g = run.gate();
        if (!(typeof g === 'boolean' ? g : await g)) {
          run.finish(i + 1, (k) => this.block(k));
          return;
        }
      }
      run.finish(end + 1, (k) => this.block(k));
    })();
    return run;
  }
}

t.test('READs past blocks the front end answered from the cache go on with the stream', async (t) => {
  const r = new StreamingReader(true);
  t.teardown(() => r.close());
  for (let i = 0; i < 10; i++) t.equal((await r.read(i * BS, BS))[0], i & 0xff, `block ${i} through the reader`);
  // Blocks 10..17 are answered natively: the reader never sees them.
  for (let i = 18; i < BLOCKS; i++) t.equal((await r.read(i * BS, BS))[0], i & 0xff, `block ${i}`);
  t.same(r.singles, [], 'no block was fetched by a request of its own');
  // The head alone, then a run of 64 and the next one: as when every READ reaches the reader.
  t.same(
    r.runs,
    [
      [0, 0],
      [1, 64],
      [65, 73],
    ],
    `one stream throughout (${r.runs.map(([a, z]) => `${a}-${z}`).join(', ')})`,
  );
});
