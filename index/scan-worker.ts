// The scan pool's worker thread (index/hash-pool.ts): hashes files and lists directories with
// blocking calls, which is what a worker thread is for; both cores stay busy on large trees.
import { parentPort } from 'node:worker_threads';
import { jobError, type JobAnswer, type JobMessage } from './worker-pool';
import type { ScanJobs } from './hash-pool';
import { FileHasher } from './file-hash';
import { listDir } from './dir-list';
import { loadNativeFuse } from '../core/native-addon';

const hasher = new FileHasher();
/** Absent without the addon: each file is then read when its turn comes. */
const adviseWillNeed = loadNativeFuse().addon?.adviseWillNeed;

/** One handler per job kind, checked against the pool's `ScanJobs`. */
const handlers: { [K in keyof ScanJobs]: (req: ScanJobs[K]['req']) => ScanJobs[K]['res'] } = {
  hash: (r) => hasher.hash(r.path, r.blockSize),
  hashMany: (r) => {
    // The batch's reads go to the disk together; each blocking read below then mostly finds its file in memory.
    adviseWillNeed?.(r.paths);
    return r.paths.map((path) => {
      try {
        return hasher.hash(path, r.blockSize);
      } catch (err) {
        return { error: jobError(err) };
      }
    });
  },
  list: (r) => listDir(r.dir, r.ino),
};

parentPort!.on('message', (m: JobMessage<ScanJobs>) => {
  let answer: JobAnswer;
  try {
    answer = { id: m.id, res: (handlers[m.kind] as (req: unknown) => unknown)(m.req) };
  } catch (err) {
    answer = { id: m.id, error: jobError(err) };
  }
  parentPort!.postMessage(answer);
});
