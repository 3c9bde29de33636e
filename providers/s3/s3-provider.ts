import { createReadStream, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type HeadObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { FsError } from '../../core/fs-error';
import { bufferedBody } from '../../core/lent-stream';
import { baseName, normalizeRel, parentOf } from '../../core/paths';
import type { Provider, ProviderEntry, ProviderFeatures, PutOptions, ReadOptions } from '../../core/provider';
import { createS3Client, DEFAULT_TIMEOUTS, isNotFound, s3Error, type S3Timeouts } from './s3-client';
import { DirectGet, type GetAnswer } from './s3-direct-get';
import { bareEtag, dirEntry, fileEntry, type RemoteObject } from './s3-entries';
import { listAll, listDir, listPages } from './s3-list';
import { DEFAULT_RETRY, retryableEio, withRetry, type RetryPolicy } from './s3-retry';
import { verifiedBody } from './s3-verify';
import type { S3Location } from './s3-uri';

export interface S3ProviderOptions {
  readonly?: boolean;
  retry?: Partial<RetryPolicy>;
  timeouts?: Partial<S3Timeouts>;
  /** Files above this are uploaded in parts (lib-storage); default 16 MiB. */
  multipartThreshold?: number;
}

/** CopyObject copies at most 5 GiB in one request. */
const MAX_COPY = 5 * 1024 ** 3;
const COPY_CONCURRENCY = 8;
const quoted = (v: string) => `"${v}"`;

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `bad offset ${offset}`);
  if (!Number.isSafeInteger(length) || length < 0) throw new FsError('EINVAL', `bad length ${length}`);
}

/**
 * A bucket prefix as a Provider. Directories are key prefixes; an empty directory is a
 * zero-byte `dir/` marker (mkdir writes one, and one is written for a parent that would
 * otherwise vanish when its last object is removed or moved). `version` is the bare ETag.
 * No symlinks. Every method throws FsError as the Provider interface says, plus ESTALE when
 * a version given by the caller is no longer the object's (reads and putFile).
 */
export class S3Provider implements Provider {
  readonly kind = 's3';
  readonly features: ProviderFeatures;
  readonly client: S3Client;
  private readonly retry: RetryPolicy;
  private readonly multipartThreshold: number;
  private readonly direct: DirectGet;

  constructor(
    readonly loc: S3Location,
    private readonly opts: S3ProviderOptions = {},
  ) {
    this.features = { write: !opts.readonly, symlinks: false, localFiles: false, versionedReads: true };
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.client = createS3Client(loc, timeouts);
    this.direct = new DirectGet(this.client, timeouts);
    this.multipartThreshold = opts.multipartThreshold ?? 16 * 1024 * 1024;
  }

  /** The object key of a relative path. */
  key(rel: string): string {
    return this.loc.prefix + rel;
  }

  /** The key prefix of a directory's children. */
  dirPrefix(rel: string): string {
    return rel === '' ? this.loc.prefix : `${this.loc.prefix}${rel}/`;
  }

  /** One SDK call with bounded retries; FsError out. */
  call<T>(what: string, fn: (signal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(
      what,
      this.retry,
      () => fn(signal),
      (err) => s3Error(err, what),
      signal,
    );
  }

  private async head(rel: string, what: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.call(what, () => this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: this.key(rel) })));
    } catch (err) {
      if (err instanceof FsError && err.code === 'ENOENT' && isNotFound(err.cause)) return undefined;
      throw err;
    }
  }

  /** Up to `max` keys under a directory's prefix. */
  private async someKeys(rel: string, max: number, what: string): Promise<string[]> {
    const out = await this.call(what, () => this.client.send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: this.dirPrefix(rel), MaxKeys: max })));
    return (out.Contents ?? []).map((o) => o.Key ?? '');
  }

  /** What is at a path: a directory wins over a same-named object (the listing shows the directory too). */
  private async lookup(rel: string, what: string): Promise<ProviderEntry | undefined> {
    if (rel === '') {
      await this.someKeys('', 1, what); // reachability and bucket existence
      return dirEntry('');
    }
    const [keys, head] = await Promise.all([this.someKeys(rel, 1, what), this.head(rel, what)]);
    if (keys.length > 0) return dirEntry(baseName(rel));
    if (head) return fileEntry(baseName(rel), head.ContentLength ?? 0, head.ETag, head.LastModified);
    return undefined;
  }

  private async mustBeDir(rel: string, what: string): Promise<void> {
    if (rel === '') return;
    const e = await this.lookup(rel, what);
    if (!e) throw new FsError('ENOENT', `${what}: directory ${rel} does not exist`);
    if (e.type !== 'dir') throw new FsError('ENOTDIR', `${what}: ${rel} is not a directory`);
  }

  private writable(what: string): void {
    if (this.opts.readonly) throw new FsError('EROFS', `${what}: the location is read-only`);
  }

  async isOnline(): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.loc.bucket }), { abortSignal: AbortSignal.timeout(2000) });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A HeadObject of a key that is not there: signed and sent like a read, answered 404 (403
   * without list rights) from one lookup on any server. Not HeadBucket: some S3-compatible
   * servers answer it with a listing (s3rver lists up to 1,000 keys and their metadata, ~150 ms
   * that the first reader of a fresh daemon waited behind). Never throws.
   */
  async warmUp(): Promise<void> {
    await this.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: this.key('.vdfs-warm-up') }), { abortSignal: AbortSignal.timeout(2000) }).catch(() => undefined);
  }

  async stat(path: string): Promise<ProviderEntry> {
    const rel = normalizeRel(path);
    const e = await this.lookup(rel, `stat ${rel}`);
    if (!e) throw new FsError('ENOENT', `stat ${rel}: no such file or directory`);
    return e;
  }

  async list(path: string): Promise<ProviderEntry[]> {
    const rel = normalizeRel(path);
    const what = `list ${rel || '/'}`;
    const entries = await listDir(this, rel, what);
    if (entries.length > 0 || rel === '') return entries;
    const e = await this.lookup(rel, what);
    if (!e) throw new FsError('ENOENT', `${what}: no such directory`);
    if (e.type !== 'dir') throw new FsError('ENOTDIR', `${what}: not a directory`);
    return [];
  }

  /** A GetObject (s3-direct-get.ts once the route is known); with `version`, If-Match is sent and the answer's ETag checked (servers that ignore If-Match). `collect`: see HttpPool.get. */
  private async get(rel: string, range: string | undefined, opts: ReadOptions, what: string, collect = 0): Promise<GetAnswer> {
    try {
      const ifMatch = opts.version ? quoted(opts.version) : undefined;
      const out: GetAnswer = this.direct.ready
        ? await this.direct.get(this.key(rel), range, ifMatch, opts.signal, collect)
        : ((await this.client.send(new GetObjectCommand({ Bucket: this.loc.bucket, Key: this.key(rel), Range: range, IfMatch: ifMatch }), {
            abortSignal: opts.signal,
          })) as GetAnswer);
      if (opts.version && bareEtag(out.ETag) !== opts.version) {
        (out.Body as Readable | undefined)?.destroy?.();
        throw new FsError('ESTALE', `${what}: the object changed (ETag ${bareEtag(out.ETag)}, expected ${opts.version})`);
      }
      return out;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const keys = await this.someKeys(rel, 1, what);
      throw new FsError(keys.length ? 'EISDIR' : 'ENOENT', `${what}: ${keys.length ? 'is a directory' : 'no such file'}`);
    }
  }

  async readRange(path: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Buffer> {
    const rel = normalizeRel(path);
    checkRange(offset, length);
    if (length === 0) return Buffer.alloc(0);
    if (rel === '') throw new FsError('EISDIR', 'readRange of the root');
    const what = `read ${rel} [${offset}+${length}]`;
    return this.call(
      what,
      async () => {
        let out;
        try {
          out = await this.get(rel, `bytes=${offset}-${offset + length - 1}`, opts, what, length);
        } catch (err) {
          // 416: the range starts at or past the end (every range of an empty object does).
          if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416 || (err as Error).name === 'InvalidRange') return Buffer.alloc(0);
          throw err;
        }
        const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(out.ContentRange ?? '');
        if (cr && cr[3] !== '*' && offset >= Number(cr[3])) {
          // Past the end, said by the headers (some servers answer an empty object's range with
          // "bytes 0-0/0" and then never send the promised byte): do not wait for a body.
          (out.Body as Readable | undefined)?.destroy?.();
          return Buffer.alloc(0);
        }
        const buf = await bufferedBody(out.Body as Readable, out.ContentLength);
        if (!cr) {
          // A server that ignores Range sends the whole object (200): cut the range out of it.
          if (out.ContentLength !== undefined && buf.length !== out.ContentLength) throw retryableEio(`${what}: body truncated (${buf.length} of ${out.ContentLength} bytes)`);
          return buf.subarray(Math.min(offset, buf.length), Math.min(offset + length, buf.length));
        }
        const want = Number(cr[2]) - Number(cr[1]) + 1;
        if (Number(cr[1]) !== offset) throw new FsError('EIO', `${what}: the server answered another range (${out.ContentRange})`);
        if (buf.length !== want) throw retryableEio(`${what}: body truncated (${buf.length} of ${want} bytes)`);
        // Some servers read "bytes=0-0" as "from 0 to the end": keep what was asked for.
        return want > length ? buf.subarray(0, length) : buf;
      },
      opts.signal,
    );
  }

  /**
   * One ranged GetObject of `length` bytes from `offset` (If-Match `opts.version`), its body
   * handed over as it arrives (see Provider.readRangeStream). A server that ignores Range is
   * answered with a buffered readRange.
   */
  async readRangeStream(path: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Readable> {
    const rel = normalizeRel(path);
    checkRange(offset, length);
    if (rel === '') throw new FsError('EISDIR', 'readRangeStream of the root');
    if (length === 0) return Readable.from([]);
    const what = `read ${rel} [${offset}+${length}]`;
    const out = await this.call(
      what,
      async () => {
        try {
          return await this.get(rel, `bytes=${offset}-${offset + length - 1}`, opts, what);
        } catch (err) {
          if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416 || (err as Error).name === 'InvalidRange') return undefined;
          throw err;
        }
      },
      opts.signal,
    );
    if (!out) return Readable.from([]);
    const body = out.Body as Readable;
    const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(out.ContentRange ?? '');
    if (cr && Number(cr[1]) === offset && (cr[3] === '*' || offset < Number(cr[3]))) {
      body.on('error', () => undefined); // the consumer sees the cut as an early end or its own error
      return body;
    }
    body?.destroy?.();
    if (cr && cr[3] !== '*' && offset >= Number(cr[3])) return Readable.from([]);
    return Readable.from([await this.readRange(path, offset, length, opts)]);
  }

  /**
   * The whole object. The stream fails with EIO when it ends short of Content-Length, or when
   * the ETag is a plain MD5 (single-part upload) and the bytes do not match it.
   */
  async readStream(path: string, opts: ReadOptions = {}): Promise<Readable> {
    const rel = normalizeRel(path);
    if (rel === '') throw new FsError('EISDIR', 'readStream of the root');
    const what = `read ${rel}`;
    const out = await this.call(what, () => this.get(rel, undefined, opts, what), opts.signal);
    return verifiedBody(out.Body as Readable, out.ContentLength ?? 0, bareEtag(out.ETag), what);
  }

  async readlink(path: string): Promise<string> {
    const rel = normalizeRel(path);
    if (!(await this.lookup(rel, `readlink ${rel}`))) throw new FsError('ENOENT', `readlink ${rel}: no such file`);
    throw new FsError('EINVAL', `readlink ${rel}: S3 has no symlinks`);
  }

  realPath(path: string): string {
    throw new FsError('ENOTSUP', `${path}: an S3 object has no local path`);
  }

  /**
   * Uploads a local file as the object at `path` (multipart above the threshold). With
   * `ifVersion` a string, refuses with ESTALE unless the object still has that ETag: If-Match goes
   * to the server (AWS honours it on PUT), and a HEAD check before the upload covers services
   * that ignore it (a change landing between that HEAD and the PUT is not caught there); a
   * missing object is ESTALE too. With `ifVersion` null, only creates: ESTALE when something is
   * there (HEAD, plus If-None-Match: * on the PUT). Throws EROFS, ENOENT (parent),
   * EISDIR, ENOTDIR, ESTALE, EHOSTDOWN, EIO.
   */
  async putFile(path: string, sourceFile: string, opts: PutOptions = {}): Promise<ProviderEntry> {
    const rel = normalizeRel(path);
    const what = `upload ${rel}`;
    this.writable(what);
    if (rel === '') throw new FsError('EISDIR', `${what}: the root is a directory`);
    await this.mustBeDir(parentOf(rel), what);
    const [keys, head] = await Promise.all([this.someKeys(rel, 1, what), this.head(rel, what)]);
    if (keys.length > 0) throw new FsError('EISDIR', `${what}: is a directory`);
    if (opts.ifVersion === null && head) throw new FsError('ESTALE', `${what}: an object appeared there on the server (ETag ${bareEtag(head.ETag)})`);
    if (typeof opts.ifVersion === 'string') {
      if (!head) throw new FsError('ESTALE', `${what}: the object was removed on the server since version ${opts.ifVersion}`);
      if (bareEtag(head.ETag) !== opts.ifVersion)
        throw new FsError('ESTALE', `${what}: the object changed on the server (ETag ${bareEtag(head.ETag)}, this change was based on ${opts.ifVersion})`);
    }
    const size = (
      await fsp.stat(sourceFile).catch((err) => {
        throw new FsError('ENOENT', `${what}: cannot read ${sourceFile}: ${(err as Error).message}`);
      })
    ).size;
    const IfMatch = typeof opts.ifVersion === 'string' ? quoted(opts.ifVersion) : undefined;
    const IfNoneMatch = opts.ifVersion === null ? '*' : undefined;
    const params = { Bucket: this.loc.bucket, Key: this.key(rel), IfMatch, IfNoneMatch };
    await this.call(what, async () => {
      if (size < this.multipartThreshold) {
        // A fresh stream per attempt: a retried PUT must send the body from its start.
        await this.client.send(new PutObjectCommand({ ...params, Body: createReadStream(sourceFile), ContentLength: size }));
      } else {
        await new Upload({ client: this.client, params: { ...params, Body: createReadStream(sourceFile) }, partSize: 8 * 1024 * 1024, queueSize: 4 }).done();
      }
    });
    const after = await this.head(rel, what);
    if (!after) throw new FsError('EIO', `${what}: the object is missing right after its upload`);
    return fileEntry(baseName(rel), after.ContentLength ?? size, after.ETag, after.LastModified);
  }

  /** CopyObject with CopySourceIfMatch: the copy is exactly `fromVersion` (see Provider.copyFile). */
  async copyFile(from: string, to: string, opts: { fromVersion: string }): Promise<ProviderEntry> {
    const [src, dst] = [normalizeRel(from), normalizeRel(to)];
    const what = `copy ${src} to ${dst}`;
    this.writable(what);
    await this.mustBeDir(parentOf(dst), what);
    const [head, there] = await Promise.all([this.head(src, what), this.head(dst, what)]);
    if (!head) throw new FsError('ENOENT', `${what}: ${src} is gone`);
    if (bareEtag(head.ETag) !== opts.fromVersion) throw new FsError('ESTALE', `${what}: ${src} changed on the server`);
    if (there) throw new FsError('ESTALE', `${what}: an object is already at ${dst}`);
    if ((head.ContentLength ?? 0) > MAX_COPY) throw new FsError('EFBIG', `${what}: larger than 5 GiB, which S3 cannot copy in one request`);
    const source = `${this.loc.bucket}/${this.key(src).split('/').map(encodeURIComponent).join('/')}`;
    await this.call(what, () =>
      this.client.send(new CopyObjectCommand({ Bucket: this.loc.bucket, Key: this.key(dst), CopySource: source, CopySourceIfMatch: quoted(opts.fromVersion) })),
    );
    const after = await this.head(dst, what);
    if (!after) throw new FsError('EIO', `${what}: the object is missing right after the copy`);
    return fileEntry(baseName(dst), after.ContentLength ?? 0, after.ETag, after.LastModified);
  }

  async mkdir(path: string): Promise<void> {
    const rel = normalizeRel(path);
    const what = `mkdir ${rel}`;
    this.writable(what);
    if (rel === '' || (await this.lookup(rel, what))) throw new FsError('EEXIST', `${what}: already exists`);
    await this.mustBeDir(parentOf(rel), what);
    await this.putMarker(rel, what);
  }

  private putMarker(rel: string, what: string): Promise<unknown> {
    return this.call(what, () => this.client.send(new PutObjectCommand({ Bucket: this.loc.bucket, Key: this.dirPrefix(rel), Body: Buffer.alloc(0), ContentLength: 0 })));
  }

  private deleteKey(key: string, what: string): Promise<unknown> {
    return this.call(what, () => this.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key: key })));
  }

  /** Before `leaving` goes, gives its parent a marker if nothing else would keep the parent in existence. */
  private async keepParent(leaving: string, what: string): Promise<void> {
    const parent = parentOf(leaving);
    if (parent === '') return;
    const keys = await this.someKeys(parent, 3, what);
    const mine = this.key(leaving);
    const others = keys.filter((k) => k !== this.dirPrefix(parent) && k !== mine && !k.startsWith(`${mine}/`));
    if (others.length === 0 && !keys.includes(this.dirPrefix(parent))) await this.putMarker(parent, what);
  }

  async remove(path: string): Promise<void> {
    const rel = normalizeRel(path);
    const what = `remove ${rel}`;
    this.writable(what);
    if (rel === '') throw new FsError('EINVAL', `${what}: the root of a location cannot be removed`);
    const e = await this.lookup(rel, what);
    if (!e) throw new FsError('ENOENT', `${what}: no such file or directory`);
    if (e.type === 'dir') {
      const keys = await this.someKeys(rel, 2, what);
      if (keys.some((k) => k !== this.dirPrefix(rel))) throw new FsError('ENOTEMPTY', `${what}: directory not empty`);
      await this.keepParent(rel, what);
      await this.deleteKey(this.dirPrefix(rel), what);
      return;
    }
    await this.keepParent(rel, what);
    await this.deleteKey(this.key(rel), what);
  }

  /**
   * Server-side copy then delete of every object involved: atomic per object, not for a
   * directory (a failure part-way leaves both trees partly present, never data lost). Objects
   * over 5 GiB cannot be copied in one request: EFBIG.
   */
  async rename(from: string, to: string): Promise<void> {
    const src = normalizeRel(from);
    const dst = normalizeRel(to);
    const what = `rename ${src} -> ${dst}`;
    this.writable(what);
    if (src === '' || dst === '') throw new FsError('EINVAL', `${what}: the root cannot be renamed`);
    const e = await this.lookup(src, what);
    if (!e) throw new FsError('ENOENT', `${what}: no such file or directory`);
    if (src === dst) return;
    if (dst.startsWith(`${src}/`)) throw new FsError('EINVAL', `${what}: cannot move a directory into itself`);
    await this.mustBeDir(parentOf(dst), what);
    const target = await this.lookup(dst, what);
    if (e.type === 'file') {
      if (target?.type === 'dir') throw new FsError('EISDIR', `${what}: the target is a directory`);
      await this.keepParent(src, what);
      await this.copy(this.key(src), this.key(dst), e.size, what);
      await this.deleteKey(this.key(src), what);
      return;
    }
    if (target?.type === 'file') throw new FsError('ENOTDIR', `${what}: the target is a file`);
    if (target?.type === 'dir') {
      const keys = await this.someKeys(dst, 2, what);
      if (keys.some((k) => k !== this.dirPrefix(dst))) throw new FsError('ENOTEMPTY', `${what}: the target directory is not empty`);
    }
    await this.keepParent(src, what);
    const from0 = this.dirPrefix(src);
    const objects = await listAll(this, from0, what);
    const big = objects.find((o) => o.size > MAX_COPY);
    if (big) throw new FsError('EFBIG', `${what}: ${big.key} is larger than 5 GiB, which S3 cannot copy in one request`);
    await runLimited(objects, COPY_CONCURRENCY, (o) => this.copy(o.key, this.dirPrefix(dst) + o.key.slice(from0.length), o.size, what));
    // Only after every copy landed: a failure above leaves the source complete.
    await runLimited(objects, COPY_CONCURRENCY, (o) => this.deleteKey(o.key, what));
  }

  private copy(fromKey: string, toKey: string, size: number, what: string): Promise<unknown> {
    if (size > MAX_COPY) throw new FsError('EFBIG', `${what}: larger than 5 GiB, which S3 cannot copy in one request`);
    const source = `${this.loc.bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`;
    return this.call(what, () => this.client.send(new CopyObjectCommand({ Bucket: this.loc.bucket, Key: toKey, CopySource: source })));
  }

  /**
   * Every object under the location's prefix, page by page (1,000 keys per request), as
   * relative keys: a `dir/` marker ends with '/'. Throws FsError (EHOSTDOWN, EACCES, EIO).
   */
  async *walk(): AsyncGenerator<RemoteObject> {
    const what = `list s3://${this.loc.bucket}/${this.loc.prefix}`;
    for await (const page of listPages(this, this.loc.prefix, undefined, what))
      for (const o of page.Contents ?? []) {
        const rel = (o.Key ?? '').slice(this.loc.prefix.length);
        if (rel !== '') yield { rel, size: o.Size ?? 0, version: bareEtag(o.ETag), lastModified: o.LastModified };
      }
  }

  async close(): Promise<void> {
    this.direct.close();
    this.client.destroy();
  }
}

/** Runs `fn` over `items`, at most `limit` at a time; the first failure rejects (the rest finish). */
async function runLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
}
