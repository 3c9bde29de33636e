import t from 'tap';
import { readReplyBuffer, recycleReply } from '../mount/fuse/reply-pool';

// READ replies are reused once written (mount/fuse/reply-pool.ts): a reused buffer must carry
// the new request's header, and only buffers the pool handed out may come back.

function request(unique: number): Buffer {
  const req = Buffer.alloc(40);
  req.writeBigUInt64LE(BigInt(unique), 8);
  return req;
}

t.test('a written 1 MiB reply is handed out again, with the next request header', async (t) => {
  const a = readReplyBuffer(request(7), 1 << 20);
  t.equal(a.length, 16 + (1 << 20));
  t.equal(a.readBigUInt64LE(8), 7n, 'unique of the request');
  a.writeInt32LE(-5, 4); // an earlier use left an error code behind
  recycleReply(a.subarray(0, 16 + 100)); // the handler answers with a slice
  const b = readReplyBuffer(request(8), 1 << 20);
  t.equal(b.buffer, a.buffer, 'the same memory');
  t.equal(b.readBigUInt64LE(8), 8n, 'unique of the new request');
  t.equal(b.readInt32LE(4), 0, 'error field reset');
  t.equal(b.readUInt32LE(0), b.length, 'length field reset');
  const c = readReplyBuffer(request(9), 1 << 20);
  t.not(c.buffer, b.buffer, 'a reply still in use is never handed out twice');
});

t.test('small replies and foreign buffers are not pooled; the pool keeps a few', async (t) => {
  const small = readReplyBuffer(request(1), 4096);
  recycleReply(small);
  t.not(readReplyBuffer(request(2), 4096).buffer, small.buffer, 'a 4 KiB reply is not reused');
  recycleReply(Buffer.alloc(16 + (1 << 20))); // not from the pool: ignored
  const taken = Array.from({ length: 10 }, (_, i) => readReplyBuffer(request(i), 256 * 1024));
  for (const b of taken) recycleReply(b);
  const again = Array.from({ length: 10 }, (_, i) => readReplyBuffer(request(i), 256 * 1024));
  const reused = again.filter((b) => taken.some((x) => x.buffer === b.buffer)).length;
  t.ok(reused >= 1 && reused <= 4, `${reused} of 10 reused (the pool keeps at most 4 per size)`);
});
