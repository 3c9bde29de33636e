import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { procStatusKiB } from './helpers/cli';
import { authHeaderFor, startWebdavServer } from './helpers/webdav';

const MiB = 1 << 20;
const SIZE = 384 * MiB;

function rssAnonKiB(pid: number): number {
  return procStatusKiB(pid, 'RssAnon');
}

// Node reads an upload's body into a fresh 64 KiB buffer per socket read, garbage once copied
// into the PUT's staging buffer; V8 freed them only at its next collection, tens of MB later
// (a 512 MiB PUT took the daemon's RSS up by 36-39 MB). The PUT paces collections by the bytes
// it receives (streamedBytes), as the S3 streams do.
t.test('a big PUT leaves no pile of dead socket buffers in the daemon', async (t) => {
  const srv = await startWebdavServer(t);
  const pid = srv.proc.pid!;
  const before = rssAnonKiB(pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssAnonKiB(pid))), 10);
  const sha = createHash('sha256');
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ port: srv.port, method: 'PUT', path: '/loc/big-put.bin', headers: { Authorization: authHeaderFor(srv.port), 'Content-Length': String(SIZE) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    let sent = 0;
    const chunk = Buffer.alloc(MiB);
    const more = () => {
      while (sent < SIZE) {
        chunk.fill(sent / MiB);
        sha.update(chunk);
        sent += MiB;
        if (!req.write(chunk)) return void req.once('drain', more);
      }
      req.end();
    };
    more();
  });
  clearInterval(sampler);
  t.equal(status, 201, 'created');
  const file = join(srv.locDir, 'big-put.bin');
  t.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), sha.digest('hex'), 'every byte landed');
  const grewMiB = (peak - before) / 1024;
  t.ok(grewMiB < 24, `the daemon's anonymous memory grew by ${grewMiB.toFixed(1)} MiB at most during a ${SIZE / MiB} MiB PUT (36-39 MB for 512 MiB before the pacing)`);
  t.end();
});
