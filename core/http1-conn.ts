import { Readable } from 'node:stream';
import type net from 'node:net';
import { FsError } from './fs-error';
import type { LendingReadable, LentSink } from './lent-stream';

/**
 * Where the socket's bytes go now. The socket asks `target()` for the buffer of its NEXT read
 * right after each read (node's onread), so the read that `filled(buf, n)` reports may have gone
 * into a buffer an earlier route gave: `buf` is where the `n` bytes really are, and a route
 * copies them when it is not the buffer it gave.
 */
interface Route {
  target(): Buffer;
  filled(buf: Buffer, n: number): void;
}

/**
 * How a connection tells its failures, which its users classify differently (the peer client
 * wants FsError EHOSTDOWN; S3 and Drive retry what looks like a reset or a TimeoutError):
 * `closed` (the server closed or reset the connection), `silent` (no byte for `idleMs`),
 * `error` (the socket's error).
 */
export type ConnFailure = (kind: 'closed' | 'silent' | 'error', message: string, cause?: Error) => Error;

/** Response headers larger than this are refused (EIO). */
const MAX_HEAD = 16 * 1024;
/** The buffer a body is read into when nobody lent one (pushed as is), and a connection's scratch buffer. */
const CHUNK = 64 * 1024;
/** A chunk-size line (with extensions) or trailer line longer than this is refused (EIO). */
const MAX_LINE = 4096;

/** Node's `onread` option of net.connect and tls.connect. */
export interface OnRead {
  buffer: () => Uint8Array;
  callback: (n: number, buf: Uint8Array) => boolean;
}

/**
 * The `onread` for a socket that will carry `at.conn`: each read goes where the connection's
 * route says. The socket asks for its first buffer as it is made, before the connection exists:
 * a scratch one then. A byte before the connection exists (nothing was asked) calls `early`.
 */
export function routedReads(at: { conn?: Http1Conn }, early: () => void): OnRead {
  return {
    buffer: () => (at.conn ? at.conn.route.target() : Buffer.allocUnsafe(16 * 1024)),
    callback: (n, buf) => {
      if (at.conn) at.conn.route.filled(buf as Buffer, n);
      else early();
      return true;
    },
  };
}

/**
 * One HTTP/1.1 client connection over a socket created with node's `onread` (net or tls), that
 * writes its request and reads the answer itself instead of node:http: the body's bytes go
 * straight from the socket into the buffers its consumer lends (LendingReadable), with no HTTP
 * parser call, no chunk allocation and no copy per read. The socket's onread must ask
 * `route.target()` and report to `route.filled()`. Kept alive for the next request while the
 * answer said so and was read to its end.
 */
export class Http1Conn {
  /** The socket's onread target and callback dispatch here. */
  route: Route;
  /** Whether a request was already made on it (a failure before the first byte may then be a close the server made while it was idle). */
  reused = false;
  /** Scratch space for reads nobody lends a buffer for (between answers, chunked framing): one per connection, so not fresh memory per read. */
  readonly scratch = Buffer.allocUnsafe(CHUNK);

  constructor(
    readonly sock: net.Socket,
    readonly failure: ConnFailure,
  ) {
    this.route = idleRoute(this);
  }

  get usable(): boolean {
    return !this.sock.destroyed && !this.sock.readableEnded && this.sock.writable;
  }

  /**
   * Writes `head` (a whole request: request line, headers, empty line) and resolves with the
   * answer once its head has arrived. Rejects with `failure`'s error (closed, reset or silent
   * for `idleMs` before the head) or FsError EIO (not an HTTP/1.x answer we can read).
   * `onDone(reusable)` runs once when the exchange is over. `collect`: see Http1Answer.
   */
  request(head: string, idleMs: number, onDone: (reusable: boolean) => void, collect = 0): Promise<Http1Answer> {
    const sock = this.sock;
    // Its 'close' may be over already: nothing would answer.
    if (!this.usable) {
      sock.destroy();
      onDone(false);
      return Promise.reject(this.failure('closed', 'the connection was closed'));
    }
    return new Promise<Http1Answer>((resolve, reject) => {
      let headBuf = Buffer.allocUnsafe(MAX_HEAD);
      let got = 0;
      let answer: Http1Answer | undefined;
      let finished = false;
      const finish = (reusable: boolean) => {
        if (finished) return;
        finished = true;
        sock.setTimeout(0);
        sock.off('close', onClose);
        sock.off('error', onError);
        sock.off('timeout', onTimeout);
        this.route = idleRoute(this);
        // A body whose reader pushed back may have paused the socket: idle, it must read, to see the server close it.
        if (reusable) sock.resume();
        else sock.destroy();
        onDone(reusable && this.usable);
      };
      const fail = (err: Error) => {
        if (answer) answer.fail(err);
        else reject(err);
        finish(false);
      };
      const onClose = () => {
        if (!answer?.endsAtClose()) fail(this.failure('closed', answer ? 'the server closed the connection mid-response' : 'the server closed the connection before answering'));
      };
      const onError = (err: Error) => fail(this.failure('error', `the connection failed: ${err.message}`, err));
      const onTimeout = () => fail(this.failure('silent', `no byte from the server within ${idleMs} ms`));
      sock.on('close', onClose);
      sock.on('error', onError);
      sock.on('timeout', onTimeout);
      sock.setTimeout(idleMs);
      let given: Buffer | undefined;
      this.route = {
        target: () => (given = headBuf.subarray(got)),
        filled: (b, n) => {
          // A read into another route's buffer (the socket's first one, the idle route's) may hold more than fits in headBuf.
          let bytes: Buffer;
          if (b === given) bytes = headBuf.subarray(0, (got += n));
          else bytes = Buffer.concat([headBuf.subarray(0, got), b.subarray(0, n)]);
          const end = bytes.indexOf('\r\n\r\n');
          if (end < 0) {
            if (bytes.length >= MAX_HEAD) fail(new FsError('EIO', `the server's answer has more than ${MAX_HEAD} bytes of headers`));
            else if (b !== given) got = bytes.copy(headBuf);
            return;
          }
          let parsed: Head;
          try {
            parsed = parseHead(bytes.toString('latin1', 0, end));
          } catch (err) {
            return fail(err as FsError);
          }
          const rest = bytes.subarray(end + 4);
          headBuf = Buffer.alloc(0);
          answer = new Http1Answer(this, parsed, (reusable) => finish(reusable && parsed.keepAlive), collect);
          resolve(answer);
          answer.start(rest);
        },
      };
      sock.write(head);
    });
  }
}

/** Kept-alive connections free for the next request (the most recent last), at most `max`; the peer client and HttpPool keep theirs here. */
export class IdleConns {
  private readonly list: Http1Conn[] = [];

  constructor(private readonly max: number) {}

  /** The most recent connection still usable, if any. */
  take(): Http1Conn | undefined {
    let c = this.list.pop();
    while (c && !c.usable) c = this.list.pop();
    return c;
  }

  /** A connection whose exchange is over: kept when `reusable` and there is room, else closed. */
  give(c: Http1Conn, reusable: boolean): void {
    if (reusable && this.list.length < this.max) this.list.push(c);
    else c.sock.destroy();
  }

  /** A connection that closed. */
  drop(c: Http1Conn): void {
    const k = this.list.indexOf(c);
    if (k >= 0) this.list.splice(k, 1);
  }

  clear(): void {
    this.list.length = 0;
  }
}

/** A request head: `METHOD path HTTP/1.1`, then the headers. Throws EINVAL for a line break in any part (it would smuggle a header or a request). */
export function requestHead(method: string, path: string, headers: Record<string, string>): string {
  const fields = Object.entries(headers);
  if ([method, path, ...fields.flat()].some((x) => /[\r\n]/.test(x))) throw new FsError('EINVAL', `a line break in the request for ${JSON.stringify(path.slice(0, 200))}`);
  return `${method} ${path} HTTP/1.1\r\n${fields.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

interface Head {
  status: number;
  headers: Record<string, string>;
  /** The body's length; undefined: chunked, or until the connection closes. */
  length?: number;
  chunked: boolean;
  keepAlive: boolean;
}

/** Reads `HTTP/1.x STATUS ...` and its headers (names lowercased, repeated ones joined by ", "). Throws EIO for what is not such an answer. */
function parseHead(text: string): Head {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]);
  if (!m) throw new FsError('EIO', `the server did not answer HTTP/1.1: ${JSON.stringify(lines[0].slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i <= 0) continue;
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  const status = Number(m[2]);
  const te = (headers['transfer-encoding'] ?? 'identity').toLowerCase();
  const chunked = te !== 'identity';
  if (chunked && te !== 'chunked') throw new FsError('EIO', `the server sent transfer-encoding ${JSON.stringify(te.slice(0, 40))}`);
  const cl = headers['content-length'];
  let length = cl === undefined || chunked ? undefined : Number(cl);
  if (length !== undefined && !(Number.isSafeInteger(length) && length >= 0)) throw new FsError('EIO', `the server sent content-length ${JSON.stringify(cl!.slice(0, 40))}`);
  if (status === 204 || status === 304) length = 0;
  const conn = headers.connection ?? '';
  const persistent = m[1] === '1' ? !/\bclose\b/i.test(conn) : /\bkeep-alive\b/i.test(conn);
  return { status, headers, length, chunked: chunked && length !== 0, keepAlive: persistent && (length !== undefined || chunked) };
}

/** The route of a connection between requests: any byte then is a protocol error, and the connection is dropped. */
function idleRoute(conn: Http1Conn): Route {
  return {
    target: () => conn.scratch,
    filled: () => conn.sock.destroy(),
  };
}

/** Where a chunked body's decoder is: in a chunk-size line, in a chunk's data, at the CRLF after it, in the trailer. */
type ChunkState = { at: 'size'; line: string } | { at: 'data'; left: number } | { at: 'crlf'; seen: number } | { at: 'trailer'; line: string };

/**
 * The body of one answer: a Readable (a chunk per socket read) until `lend` is called, then
 * written straight into the consumer's buffers (a chunked body is copied there from the
 * connection's scratch buffer, its framing taken out). Ends after content-length bytes or the
 * last chunk (the connection is then free for the next request) or, without either, when the
 * connection closes; fails with the connection's `failure` when it is cut or silent first.
 */
export class Http1Answer extends Readable implements LendingReadable {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Body bytes still to come (content-length), or Infinity (chunked: see `chunk`; or until the close). */
  private left: number;
  private chunk?: ChunkState;
  private sink?: LentSink;
  private over = false;
  /** Within `start`: see `fail`. */
  private starting = false;
  /** The buffer the socket's next read goes into (from `target`), and whose it is. */
  private given?: { buf: Buffer; kind: 'sink' | 'chunk' | 'scratch' };
  private whole?: { buf: Buffer; fill: number };

  /**
   * `collect`: a body with a content-length of at most this many bytes is written into one
   * buffer of that size from its first byte (`collected`), lent before the socket's next read:
   * by the time a consumer could `lend` (after the answer's promise resolves), the reads after
   * the head had gone into fresh chunks, copied again into the lent buffer.
   */
  constructor(
    private readonly conn: Http1Conn,
    head: Head,
    private readonly done: (reusable: boolean) => void,
    private readonly collect = 0,
  ) {
    super();
    this.status = head.status;
    this.headers = head.headers;
    this.left = head.length ?? Infinity;
    if (head.chunked) this.chunk = { at: 'size', line: '' };
  }

  /** Starts the body with `first` (bytes that came with the head). */
  start(first: Buffer): void {
    this.conn.route = {
      target: () => this.target(),
      filled: (buf, n) => this.arrived(buf, n),
    };
    if (this.status >= 200 && this.status < 300 && !this.chunk && this.left > 0 && this.left <= this.collect) {
      const w = (this.whole = { buf: Buffer.allocUnsafe(this.left), fill: 0 });
      this.sink = { target: () => w.buf.subarray(w.fill), filled: (n) => void (w.fill += n) };
    }
    this.starting = true;
    if (first.length > 0) this.arrived(first, first.length);
    if (this.left === 0) this.bodyEnd();
    this.starting = false;
  }

  /** The body's bytes so far when it is collected whole (the constructor's `collect`), else undefined. */
  get collected(): Buffer | undefined {
    return this.whole?.buf.subarray(0, this.whole.fill);
  }

  lend(sink: LentSink): void {
    this.sink = sink;
    // What arrived before (with the head, or read before this call) waits in the stream's buffer.
    for (let c = this.read() as Buffer | null; c !== null; c = this.read() as Buffer | null) this.copyToSink(c);
    if (this.over && !this.destroyed) this.read(0);
  }

  private target(): Buffer {
    const room = Math.max(1, Math.min(this.left, CHUNK));
    const t = this.sink && !this.over && !this.chunk ? this.sink.target() : undefined;
    if (t && t.length > 0) this.given = { buf: t.length > this.left ? t.subarray(0, this.left) : t, kind: 'sink' };
    else if (this.sink || this.over || this.chunk) this.given = { buf: this.conn.scratch.subarray(0, room), kind: 'scratch' };
    else this.given = { buf: Buffer.allocUnsafe(room), kind: 'chunk' };
    return this.given.buf;
  }

  /**
   * `n` bytes at the start of `buf`: the target we gave (nothing to copy) or another buffer
   * (bytes that came with the head, or a read into an earlier route's buffer: copied).
   */
  private arrived(buf: Buffer, n: number): void {
    if (this.over) return;
    const kind = this.given?.buf === buf ? this.given.kind : 'other';
    this.given = undefined;
    if (this.chunk) return this.unframe(buf.subarray(0, n));
    if (n > this.left) return this.refuse(new FsError('EIO', 'the server sent more than its content-length'));
    this.left -= n;
    if (kind === 'sink') this.sink!.filled(n);
    else if (kind === 'chunk') this.deliver(buf.subarray(0, n), true);
    else if (!(kind === 'scratch' && this.sink && !this.over)) this.deliver(buf.subarray(0, n), false);
    if (this.left === 0) this.bodyEnd();
  }

  /** Body bytes in a buffer that is not the consumer's: copied into its lent buffers, or pushed (`own`: this buffer is ours to push, else a copy). */
  private deliver(bytes: Buffer, own: boolean): void {
    if (bytes.length === 0) return;
    if (this.sink) this.copyToSink(bytes);
    else if (!this.push(own ? bytes : Buffer.from(bytes))) this.conn.sock.pause();
  }

  /** Takes a chunked body's framing out of `bytes` and delivers the data (RFC 9112 §7.1; chunk extensions and trailers are read and ignored). */
  private unframe(bytes: Buffer): void {
    let i = 0;
    while (i < bytes.length && !this.over) {
      const s = this.chunk!;
      if (s.at === 'data') {
        const n = Math.min(s.left, bytes.length - i);
        this.deliver(bytes.subarray(i, i + n), false);
        i += n;
        s.left -= n;
        if (s.left === 0) this.chunk = { at: 'crlf', seen: 0 };
        continue;
      }
      if (s.at === 'crlf') {
        if (bytes[i++] !== (s.seen === 0 ? 0x0d : 0x0a)) return this.refuse(new FsError('EIO', 'the server sent a chunk without its CRLF'));
        if (++s.seen === 2) this.chunk = { at: 'size', line: '' };
        continue;
      }
      // A line: a chunk size, or a trailer field (the empty one ends the body).
      const nl = bytes.indexOf(0x0a, i);
      const end = nl < 0 ? bytes.length : nl + 1;
      s.line += bytes.toString('latin1', i, end);
      i = end;
      if (s.line.length > MAX_LINE) return this.refuse(new FsError('EIO', 'the server sent a chunk-size or trailer line too long'));
      if (nl < 0) continue;
      const line = s.line.replace(/\r?\n$/, '');
      if (s.at === 'trailer') {
        if (line === '') {
          // Anything after the last chunk's trailer is not part of this answer: the connection cannot be reused.
          const extra = i < bytes.length;
          this.left = 0;
          this.chunk = undefined;
          if (extra) this.done(false);
          return this.bodyEnd();
        }
        s.line = '';
        continue;
      }
      const m = /^([0-9a-fA-F]{1,12})[ \t]*(;.*)?$/.exec(line);
      if (!m) return this.refuse(new FsError('EIO', `the server sent a bad chunk size ${JSON.stringify(line.slice(0, 40))}`));
      const size = parseInt(m[1], 16);
      this.chunk = size === 0 ? { at: 'trailer', line: '' } : { at: 'data', left: size };
    }
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

  /** The connection closed: true when that ends the body (no content-length, not chunked), which then ends. */
  endsAtClose(): boolean {
    if (this.over || this.left !== Infinity || this.chunk) return false;
    this.bodyEnd();
    return true;
  }

  /** The body is not what HTTP allows: it fails, and the connection is dropped. */
  private refuse(err: Error): void {
    if (this.over) return;
    this.done(false);
    this.fail(err);
  }

  /**
   * The connection failed before the body's end. Failing while the head is handed over (bytes
   * that came with it), the error waits a turn of the event loop: whoever awaits the answer
   * has not listened yet, and an 'error' nobody listens to would end the process.
   */
  fail(err: Error): void {
    if (this.over) return;
    this.over = true;
    if (this.starting) setImmediate(() => this.destroy(err));
    else this.destroy(err);
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
    if (this.sink && !this.over) this.conn.sock.pause();
    return super.pause();
  }

  override resume(): this {
    if (this.sink && !this.over) this.conn.sock.resume();
    return super.resume();
  }
}
