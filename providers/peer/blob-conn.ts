import { Readable } from 'node:stream';
import type tls from 'node:tls';
import { FsError } from '../../core/fs-error';
import type { LendingReadable, LentSink } from '../../core/lent-stream';

/**
 * Where the socket's decrypted bytes go now. The socket asks `target()` for the buffer of its
 * NEXT read right after each read (node's onread), so the read that `filled(buf, n)` reports may
 * have gone into a buffer an earlier route gave: `buf` is where the `n` bytes really are, and a
 * route copies them when it is not the buffer it gave.
 */
interface Route {
  target(): Buffer;
  filled(buf: Buffer, n: number): void;
}

/** Response headers larger than this are refused (EIO): a blob answer's are a few hundred bytes. */
const MAX_HEAD = 16 * 1024;
/** The buffer a body is read into when nobody lent one (a chunk per read, pushed as is). */
const CHUNK = 64 * 1024;

/**
 * One TLS connection to a peer that speaks HTTP/1.1 itself for blob requests, reading with the
 * socket's `onread` (bytes decrypted straight into a buffer we choose) instead of node:http, so
 * a streamed body costs no HTTP parser call, no chunk allocation and no copy per 16 KiB TLS
 * record: the body goes into the blocks its consumer lends (LendingReadable). Kept alive for
 * the next request while the answer said so and was read to its end.
 */
export class BlobConn {
  /** Set by the connection's creator: the socket's onread target and callback dispatch here. */
  route: Route = idleRoute(this);
  reused = false;

  constructor(readonly sock: tls.TLSSocket) {}

  get usable(): boolean {
    return !this.sock.destroyed && !this.sock.readableEnded && this.sock.writable;
  }

  /**
   * Sends `GET path` with `headers` and resolves with the answer once its head has arrived.
   * Rejects with EHOSTDOWN (closed, reset or silent for `idleMs` before the head), EIO (not an
   * HTTP/1.1 answer we can read). `onDone(reusable)` runs once when the exchange is over.
   */
  request(head: string, idleMs: number, onDone: (reusable: boolean) => void): Promise<BlobAnswer> {
    const sock = this.sock;
    // Its 'close' may be over already: nothing would answer.
    if (!this.usable) {
      sock.destroy();
      onDone(false);
      return Promise.reject(new FsError('EHOSTDOWN', 'the connection was closed'));
    }
    return new Promise<BlobAnswer>((resolve, reject) => {
      let headBuf = Buffer.allocUnsafe(MAX_HEAD);
      let got = 0;
      let answer: BlobAnswer | undefined;
      let finished = false;
      const finish = (reusable: boolean) => {
        if (finished) return;
        finished = true;
        sock.setTimeout(0);
        sock.off('close', onClose);
        sock.off('error', onError);
        sock.off('timeout', onTimeout);
        this.route = idleRoute(this);
        if (!reusable) sock.destroy();
        onDone(reusable && this.usable);
      };
      const fail = (err: FsError) => {
        if (answer) answer.fail(err);
        else reject(err);
        finish(false);
      };
      const onClose = () => fail(new FsError('EHOSTDOWN', answer ? 'the peer closed the connection mid-response' : 'the peer closed the connection before answering'));
      const onError = (err: Error) => fail(new FsError('EHOSTDOWN', `the connection failed: ${err.message}`, err));
      const onTimeout = () => fail(new FsError('EHOSTDOWN', `no byte from the peer within ${idleMs} ms`));
      sock.on('close', onClose);
      sock.on('error', onError);
      sock.on('timeout', onTimeout);
      sock.setTimeout(idleMs);
      let given: Buffer | undefined;
      this.route = {
        target: () => (given = headBuf.subarray(got)),
        filled: (b, n) => {
          if (b !== given) n = b.copy(headBuf, got, 0, n);
          got += n;
          const end = headBuf.subarray(0, got).indexOf('\r\n\r\n');
          if (end < 0) {
            if (got === headBuf.length) fail(new FsError('EIO', `the peer's answer has more than ${MAX_HEAD} bytes of headers`));
            return;
          }
          let parsed: Head;
          try {
            parsed = parseHead(headBuf.toString('latin1', 0, end));
          } catch (err) {
            return fail(err as FsError);
          }
          const rest = headBuf.subarray(end + 4, got);
          headBuf = Buffer.alloc(0);
          answer = new BlobAnswer(this, parsed, (reusable) => finish(reusable && parsed.keepAlive));
          resolve(answer);
          answer.start(rest);
        },
      };
      sock.write(head);
    });
  }
}

interface Head {
  status: number;
  headers: Record<string, string>;
  /** The body's length; undefined: until the connection closes. */
  length?: number;
  keepAlive: boolean;
}

/** Reads `HTTP/1.1 STATUS ...` and its headers. Throws EIO for what a peer server never sends (chunked, no status). */
function parseHead(text: string): Head {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new FsError('EIO', `the peer did not answer HTTP/1.1: ${JSON.stringify(lines[0].slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  if (headers['transfer-encoding'] && headers['transfer-encoding'] !== 'identity') throw new FsError('EIO', 'the peer answered a blob request with a chunked body');
  const cl = headers['content-length'];
  const length = cl === undefined ? undefined : Number(cl);
  if (length !== undefined && !Number.isSafeInteger(length)) throw new FsError('EIO', `the peer sent content-length ${JSON.stringify(cl.slice(0, 40))}`);
  const keepAlive = length !== undefined && !/\bclose\b/i.test(headers.connection ?? '');
  return { status: Number(m[1]), headers, length, keepAlive };
}

/** The route of a connection between requests: any byte then is a protocol error, and the connection is dropped. */
function idleRoute(conn: BlobConn): Route {
  let scratch: Buffer | undefined;
  return {
    target: () => (scratch ??= Buffer.allocUnsafe(CHUNK)),
    filled: () => conn.sock.destroy(),
  };
}

/**
 * The body of one answer: a Readable (a chunk per socket read) until `lend` is called, then
 * written straight into the consumer's buffers. Ends after content-length bytes (the
 * connection is then free for the next request) or, without one, when the connection closes;
 * fails with EHOSTDOWN when the connection is cut or silent first.
 */
export class BlobAnswer extends Readable implements LendingReadable {
  readonly status: number;
  readonly headers: Record<string, string>;
  private left: number;
  private sink?: LentSink;
  private over = false;
  private discard?: Buffer;
  /** The buffer the socket's next read goes into (from `target`), and whose it is. */
  private given?: { buf: Buffer; kind: 'sink' | 'chunk' | 'discard' };

  constructor(
    private readonly conn: BlobConn,
    head: Head,
    private readonly done: (reusable: boolean) => void,
  ) {
    super();
    this.status = head.status;
    this.headers = head.headers;
    this.left = head.length ?? Infinity;
  }

  /** Starts the body with `first` (bytes that came with the head). */
  start(first: Buffer): void {
    this.conn.route = {
      target: () => this.target(),
      filled: (buf, n) => this.arrived(buf, n),
    };
    if (first.length > 0) this.arrived(first, first.length);
    if (this.left === 0) this.bodyEnd();
  }

  lend(sink: LentSink): void {
    this.sink = sink;
    // What arrived before (with the head, or read before this call) waits in the stream's buffer.
    for (let c = this.read() as Buffer | null; c !== null; c = this.read() as Buffer | null) this.copyToSink(c);
    if (this.over && !this.destroyed) this.read(0);
  }

  private target(): Buffer {
    const room = Math.max(1, Math.min(this.left, CHUNK));
    const t = this.sink && !this.over ? this.sink.target() : undefined;
    if (t && t.length > 0) this.given = { buf: t.length > this.left ? t.subarray(0, this.left) : t, kind: 'sink' };
    else if (this.sink || this.over) this.given = { buf: (this.discard ??= Buffer.allocUnsafe(CHUNK)).subarray(0, room), kind: 'discard' };
    else this.given = { buf: Buffer.allocUnsafe(room), kind: 'chunk' };
    return this.given.buf;
  }

  /**
   * `n` bytes at the start of `buf`: the target we gave (nothing to copy) or another buffer
   * (bytes that came with the head, or a read into an earlier route's buffer: copied).
   */
  private arrived(buf: Buffer, n: number): void {
    if (this.over) return;
    if (n > this.left) return this.fail(new FsError('EIO', 'the peer sent more than its content-length'));
    this.left -= n;
    const kind = this.given?.buf === buf ? this.given.kind : 'other';
    this.given = undefined;
    if (this.sink) {
      if (kind === 'sink') this.sink.filled(n);
      else if (kind !== 'discard') this.copyToSink(buf.subarray(0, n));
    } else if (!this.push(kind === 'chunk' ? buf.subarray(0, n) : Buffer.from(buf.subarray(0, n)))) {
      this.conn.sock.pause();
    }
    if (this.left === 0) this.bodyEnd();
  }

  private copyToSink(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length) {
      const t = this.sink!.target();
      if (t.length === 0) return;
      const n = bytes.copy(t, 0, at);
      at += n;
      this.sink!.filled(n);
    }
  }

  private bodyEnd(): void {
    if (this.over) return;
    this.over = true;
    this.done(true);
    this.push(null);
    if (this.sink) this.read(0); // nobody reads a lent stream: 'end' is emitted from here
  }

  /** The connection failed before the body's end. */
  fail(err: FsError): void {
    if (this.over) return;
    this.over = true;
    this.destroy(err);
  }

  override _read(): void {
    if (!this.over) this.conn.sock.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.over) {
      // Given up before its end: the rest of the answer is still on its way, so the connection cannot be reused.
      this.over = true;
      this.done(false);
    }
    cb(err);
  }

  override pause(): this {
    if (this.sink) this.conn.sock.pause();
    return super.pause();
  }

  override resume(): this {
    if (this.sink && !this.over) this.conn.sock.resume();
    return super.resume();
  }
}
