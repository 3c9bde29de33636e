// The scan pool's worker thread (index/hash-pool.ts): hashes files and lists directories with
// blocking calls, which is what a worker thread is for; both cores stay busy on large trees.
import { parentPort } from 'node:worker_threads';
import type { JobAnswer, JobMessage } from './worker-pool';
import type { ScanJobs } from './hash-pool';
import { FileHasher } from './file-hash';
import { listDir } from './dir-list';

const hasher = new FileHasher();

/** One handler per job kind, checked against the pool's `ScanJobs`. */
const handlers: { [K in keyof ScanJobs]: (req: ScanJobs[K]['req']) => ScanJobs[K]['res'] } = {
  hash: (r) => hasher.hash(r.path, r.blockSize),
  list: (r) => listDir(r.dir, r.ino),
};

parentPort!.on('message', (m: JobMessage<ScanJobs>) => {
  let answer: JobAnswer;
  try {
    answer = { id: m.id, res: (handlers[m.kind] as (req: unknown) => unknown)(m.req) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    answer = { id: m.id, error: { code: e.code, message: e.message } };
  }
  parentPort!.postMessage(answer);
});
