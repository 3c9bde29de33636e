import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { FsError } from '../../core/fs-error';

/** A single-part upload's ETag is the MD5 of its bytes (multipart ETags end in `-N`; SSE-KMS ones are opaque). */
const MD5_ETAG = /^[0-9a-f]{32}$/;

/**
 * Passes an object body through, failing the stream with EIO when it ends short of (or past)
 * `size`, or when `etag` looks like a plain MD5 and the bytes do not match it. This is what
 * protects whole-object reads (hashing by `vdfs scan --hash`) from truncated or damaged bodies.
 */
export function verifiedBody(body: Readable, size: number, etag: string, what: string): Readable {
  const md5 = MD5_ETAG.test(etag) ? createHash('md5') : undefined;
  let n = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      md5?.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      if (n !== size) return cb(new FsError('EIO', `${what}: body has ${n} bytes, the server announced ${size}`));
      const got = md5?.digest('hex');
      if (got !== undefined && got !== etag) return cb(new FsError('EIO', `${what}: content does not match its ETag (MD5 ${got}, ETag ${etag})`));
      cb();
    },
  });
  body.on('error', (err) => t.destroy(new FsError('EIO', `${what}: ${(err as Error).message}`, err)));
  return body.pipe(t);
}
