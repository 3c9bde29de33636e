import { promises as fsp } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { FsError } from '../../core/fs-error';
import { bufferedBody } from '../../core/lent-stream';
import { baseName, normalizeRel, parentOf, splitPath } from '../../core/paths';
import type { Provider, ProviderEntry, ProviderFeatures, PutOptions, ReadOptions } from '../../core/provider';
import { DriveApi, driveError, FOLDER, GOOGLE_PREFIX, SHORTCUT, type DriveFile } from './gdrive-api';
import { displayNames } from './gdrive-names';
import { DEFAULT_RETRY, httpStatus, retryableEio, type RetryPolicy } from './gdrive-retry';
import type { MediaAnswer } from './gdrive-media';
import { resumableUpload } from './gdrive-upload';
import { EXPORT_TYPES, type GdriveLocation } from './gdrive-uri';
import { walkIncremental } from './gdrive-changes';
import type { WalkedObject } from './gdrive-walk';
import type { Node } from './gdrive-node';

export interface GdriveProviderOptions {
  readonly?: boolean;
  retry?: Partial<RetryPolicy>;
  /** How long a folder's listing is reused to resolve paths to ids (ms). Metadata is always fetched fresh for stat. */
  folderTtlMs?: number;
  /**
   * The vdfs home: its gdrive/ holds the tokens and the listing snapshots of incremental
   * scans. Given by whoever opens the provider, so the provider never looks for the home.
   */
  homeDir?: string;
}

const FILE_MODE = 0o644;
const DOC_MODE = 0o444;
const DIR_MODE = 0o755;
const EXPORT_CACHE_BYTES = 64 * 1024 * 1024;
/** Sequential reads fetch this much per request. */
const WINDOW = 8 * 1024 * 1024;

function mtime(iso: string | null | undefined): { mtimeSec: number; mtimeNsec: number } {
  const ms = iso ? Date.parse(iso) : 0;
  return { mtimeSec: Math.floor(ms / 1000), mtimeNsec: (ms % 1000) * 1e6 };
}

/** Where a 206 answer's Content-Range starts (NaN without one). */
function rangeStart(a: MediaAnswer): number {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(a.contentRange ?? '');
  return m ? Number(m[1]) : NaN;
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new FsError('EINVAL', `bad offset ${offset}`);
  if (!Number.isSafeInteger(length) || length < 0) throw new FsError('EINVAL', `bad length ${length}`);
}

/**
 * A Drive folder as a Provider. Paths map to the folder tree under the location's folder id,
 * with names made unique and POSIX-safe (gdrive-names.ts). `version` is the md5Checksum of
 * a file with bytes, `v<version>` for a Google Docs editors file, which appears read-only as
 * its export. Shortcuts show as their target; trashed files are left out. No symlinks. Every
 * method throws FsError as the Provider interface says; EACCES naming `vdfs auth gdrive` when
 * the authorisation is missing or revoked; ESTALE when a version given by the caller is not
 * the file's any more.
 */
export class GdriveProvider implements Provider {
  readonly kind = 'gdrive';
  readonly features: ProviderFeatures;
  private apiInstance?: DriveApi;
  private readonly folders = new Map<string, { at: number; names: Map<string, Node> }>();
  private readonly exports = new LRUCache<string, Buffer>({ maxSize: EXPORT_CACHE_BYTES, sizeCalculation: (b) => Math.max(b.length, 1) });
  private readonly metaCache = new Map<string, { at: number; file: DriveFile }>();
  private readonly retry: RetryPolicy;
  private readonly windows = new Map<number, { key: string; start: number; end: number; data: Promise<Buffer> }>();
  private readonly lastEnd = new Map<string, number>();
  private windowSeq = 0;
  private readonly folderTtlMs: number;

  constructor(
    readonly loc: GdriveLocation,
    private readonly opts: GdriveProviderOptions = {},
  ) {
    this.features = { write: !opts.readonly, symlinks: false, localFiles: false, versionedReads: true, changeFeed: true };
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.folderTtlMs = opts.folderTtlMs ?? 5000;
  }

  /** The client, made on first use: opening a provider must not fail when no token is stored yet. Throws EACCES. */
  get api(): DriveApi {
    this.apiInstance ??= new DriveApi(this.loc.rootUrl, this.retry, this.opts.homeDir);
    return this.apiInstance;
  }

  /** The export extension of a Google file; undefined for files with bytes and folders. */
  exportExt(mimeType: string | null | undefined): string | undefined {
    if (!mimeType || !mimeType.startsWith(GOOGLE_PREFIX) || mimeType === FOLDER || mimeType === SHORTCUT) return undefined;
    return this.loc.exports[mimeType] ?? 'pdf';
  }

  /** A listed child as a Node; a shortcut's target is fetched (a dangling one is left out). */
  async toNode(f: DriveFile, what: string): Promise<Node | undefined> {
    let target = f;
    if (f.mimeType === SHORTCUT) {
      const id = f.shortcutDetails?.targetId;
      if (!id) return undefined;
      try {
        target = await this.api.getMeta(id, what);
      } catch (err) {
        if ((err as FsError).code === 'ENOENT') return undefined;
        throw err;
      }
      if (target.trashed) return undefined;
    }
    const kind = target.mimeType === FOLDER ? 'dir' : this.exportExt(target.mimeType) ? 'doc' : 'file';
    return { id: target.id!, selfId: f.id!, name: f.name ?? '', kind, file: { ...target, name: f.name, createdTime: f.createdTime, id: f.id } };
  }

  /** A folder's children by unique name; a listing younger than the TTL is reused unless `fresh`. */
  async folder(id: string, what: string, fresh = false): Promise<Map<string, Node>> {
    const c = this.folders.get(id);
    if (c && !fresh && Date.now() - c.at < this.folderTtlMs) return c.names;
    const files = await this.api.listChildren([id], what);
    const nodes = (await Promise.all(files.map((f) => this.toNode(f, what)))).filter((n): n is Node => !!n);
    const names = this.named(nodes);
    this.folders.set(id, { at: Date.now(), names });
    return names;
  }

  /** Unique names for one folder's nodes (gdrive-names.ts). */
  named(nodes: Node[]): Map<string, Node> {
    const wrapped = nodes.map((n) => ({ id: n.selfId, name: n.file.name ?? '', createdTime: n.file.createdTime, n }));
    const out = new Map<string, Node>();
    for (const [name, w] of displayNames(wrapped, (w) => (w.n.kind === 'doc' ? this.exportExt(w.n.file.mimeType) : undefined))) out.set(name, { ...w.n, name });
    return out;
  }

  private forget(folderId?: string): void {
    if (folderId) this.folders.delete(folderId);
    else this.folders.clear();
    this.metaCache.clear();
  }

  /** The node at a path ('' = the location's folder). Throws ENOENT, ENOTDIR. */
  async resolve(rel: string, what: string): Promise<Node> {
    let cur: Node = { id: this.loc.folderId, selfId: this.loc.folderId, name: '', kind: 'dir', file: { id: this.loc.folderId, mimeType: FOLDER } };
    const parts = splitPath(rel);
    if (parts.length === 0) {
      const f = await this.api.getMeta(this.loc.folderId, what);
      if (f.mimeType !== FOLDER && f.id !== this.loc.folderId) throw new FsError('ENOTDIR', `${what}: the location's id is not a folder`);
      return { ...cur, file: f };
    }
    for (let i = 0; i < parts.length; i++) {
      if (cur.kind !== 'dir') throw new FsError('ENOTDIR', `${what}: ${parts.slice(0, i).join('/')} is not a directory`);
      let next = (await this.folder(cur.id, what)).get(parts[i]);
      // Not in a reused listing: it may be new since; ask again before saying ENOENT.
      next ??= (await this.folder(cur.id, what, true)).get(parts[i]);
      if (!next) throw new FsError('ENOENT', `${what}: ${parts.slice(0, i + 1).join('/')}: no such file or directory`);
      cur = next;
    }
    return cur;
  }

  /** Fresh metadata of a resolved node; a node whose id vanished (trashed, deleted) is resolved again from fresh listings. */
  private async fresh(rel: string, what: string, maxAgeMs = 0): Promise<Node> {
    const n = await this.resolve(rel, what);
    if (rel === '') return n;
    const cached = this.metaCache.get(n.id);
    if (cached && Date.now() - cached.at <= maxAgeMs) return { ...n, file: { ...cached.file, name: n.file.name, id: n.file.id } };
    try {
      const f = await this.api.getMeta(n.id, what);
      if (!f.trashed) {
        this.metaCache.set(n.id, { at: Date.now(), file: f });
        return { ...n, file: { ...f, name: n.file.name, id: n.file.id, createdTime: n.file.createdTime } };
      }
    } catch (err) {
      if ((err as FsError).code !== 'ENOENT') throw err;
    }
    this.forget();
    const again = await this.resolve(rel, what);
    const f = await this.api.getMeta(again.id, what);
    return { ...again, file: { ...f, name: again.file.name, id: again.file.id } };
  }

  /** A Google file's export, cached by id and version. */
  private async exported(n: Node, what: string): Promise<Buffer> {
    const ext = this.exportExt(n.file.mimeType)!;
    const key = `${n.id}:${n.file.version}:${ext}`;
    let b = this.exports.get(key);
    if (!b) {
      b = await this.api.export(n.id, EXPORT_TYPES[ext] ?? 'application/pdf', what);
      this.exports.set(key, b);
    }
    return b;
  }

  private versionOf(n: Node): string {
    if (n.kind === 'dir') return 'dir';
    return n.kind === 'doc' || !n.file.md5Checksum ? `v${n.file.version ?? '0'}` : n.file.md5Checksum;
  }

  async entry(n: Node, what: string): Promise<ProviderEntry> {
    const t = mtime(n.file.modifiedTime);
    if (n.kind === 'dir') return { name: n.name, type: 'dir', size: 0, ...t, mode: DIR_MODE, version: 'dir' };
    const size = n.kind === 'doc' ? (await this.exported(n, what)).length : Number(n.file.size ?? 0);
    return { name: n.name, type: 'file', size, ...t, mode: n.kind === 'doc' ? DOC_MODE : FILE_MODE, version: this.versionOf(n) };
  }

  private writable(what: string): void {
    if (this.opts.readonly) throw new FsError('EROFS', `${what}: the location is read-only`);
  }

  async isOnline(): Promise<boolean> {
    try {
      await this.api.drive.files.get({ fileId: this.loc.folderId, fields: 'id', supportsAllDrives: true }, { retry: false, timeout: 2000 });
      return true;
    } catch {
      return false;
    }
  }

  async stat(path: string): Promise<ProviderEntry> {
    const rel = normalizeRel(path);
    const what = `stat ${rel || '/'}`;
    const n = await this.fresh(rel, what);
    return { ...(await this.entry(n, what)), name: baseName(rel) };
  }

  async list(path: string): Promise<ProviderEntry[]> {
    const rel = normalizeRel(path);
    const what = `list ${rel || '/'}`;
    const n = await this.resolve(rel, what);
    if (n.kind !== 'dir') throw new FsError('ENOTDIR', `${what}: not a directory`);
    const names = await this.folder(n.id, what, true);
    return Promise.all([...names.values()].map((c) => this.entry(c, what)));
  }

  /** A file node for reading, its version checked against `opts.version` (on metadata at most `maxAgeMs` old). */
  private async readable(rel: string, opts: ReadOptions, what: string, maxAgeMs = 1000): Promise<Node> {
    if (rel === '') throw new FsError('EISDIR', `${what}: the root is a directory`);
    const n = await this.fresh(rel, what, maxAgeMs);
    if (n.kind === 'dir') throw new FsError('EISDIR', `${what}: is a directory`);
    if (opts.version && this.versionOf(n) !== opts.version)
      throw new FsError('ESTALE', `${what}: the file changed on Drive (version ${this.versionOf(n)}, expected ${opts.version})`);
    return n;
  }

  async readRange(path: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Buffer> {
    const rel = normalizeRel(path);
    checkRange(offset, length);
    const what = `read ${rel} [${offset}+${length}]`;
    const alongside = await this.rangeAlongside(rel, offset, length, opts, what);
    if (alongside) return alongside;
    const n = await this.readable(rel, opts, what);
    if (n.kind === 'doc') {
      const b = await this.exported(n, what);
      return Buffer.from(b.subarray(Math.min(offset, b.length), Math.min(offset + length, b.length)));
    }
    const size = Number(n.file.size ?? 0);
    if (length === 0 || offset >= size) return Buffer.alloc(0);
    const key = `${n.id}:${this.versionOf(n)}`;
    // Sequential reads (the block reader asks 1 MiB at a time) are served from windows of up
    // to 8 MiB: one request per window instead of one per block, which is what per-request
    // overhead costs (about 4x on loopback). Windows in flight are shared by later blocks.
    for (const w of this.windows.values())
      if (w.key === key && offset >= w.start && offset < w.end && Math.min(offset + length, size) <= w.end) {
        const buf = await w.data;
        return Buffer.from(buf.subarray(offset - w.start, Math.min(offset + length, size) - w.start));
      }
    const sequential = this.lastEnd.get(key) === offset || (this.windows.size > 0 && [...this.windows.values()].some((w) => w.key === key && w.end === offset));
    const want = sequential ? Math.max(length, WINDOW) : length;
    const end = Math.min(offset + want, size) - 1;
    this.lastEnd.set(key, Math.min(offset + length, size));
    if (this.lastEnd.size > 256) this.lastEnd.delete(this.lastEnd.keys().next().value!);
    if (sequential) {
      const data = this.fetchRange(n.id, offset, end, size, opts, what);
      const w = { key, start: offset, end: end + 1, data };
      const wid = this.windowSeq++;
      this.windows.set(wid, w);
      data.catch(() => undefined).finally(() => setTimeout(() => this.windows.delete(wid), 2000).unref());
      while (this.windows.size > 8) this.windows.delete(this.windows.keys().next().value!);
      const buf = await data;
      return Buffer.from(buf.subarray(0, Math.min(length, buf.length)));
    }
    return this.fetchRange(n.id, offset, end, size, opts, what);
  }

  /**
   * A lone range (not one the windows of readRange would serve) of a file whose metadata is not
   * cached: its bytes and the metadata that checks `opts.version` are asked for at once, one
   * round trip instead of two (a cold random read's time to first byte). The bytes are returned
   * only once the version is confirmed. Undefined when this does not apply (no version to check,
   * fresh metadata at hand, a sequential read, a listing out of date): the caller goes the ordinary way.
   */
  private async rangeAlongside(rel: string, offset: number, length: number, opts: ReadOptions, what: string): Promise<Buffer | undefined> {
    if (!opts.version || length === 0 || rel === '') return undefined;
    const listed = await this.resolve(rel, what);
    const cached = this.metaCache.get(listed.id);
    if (listed.kind !== 'file' || (cached && Date.now() - cached.at <= 1000)) return undefined;
    const key = `${listed.id}:${opts.version}`;
    if (this.lastEnd.get(key) === offset || [...this.windows.values()].some((w) => w.key === key && offset >= w.start && offset <= w.end)) return undefined;
    const size = Number(listed.file.size ?? 0);
    if (offset >= size) return undefined;
    const end = Math.min(offset + length, size) - 1;
    const [meta, got] = await Promise.allSettled([this.readable(rel, opts, what), this.fetchRange(listed.id, offset, end, size, opts, what)]);
    if (meta.status === 'rejected') throw meta.reason;
    if (meta.value.id !== listed.id || meta.value.kind !== 'file' || Number(meta.value.file.size ?? 0) !== size) return undefined;
    if (got.status === 'rejected') throw got.reason;
    this.lastEnd.set(key, end + 1);
    return got.value;
  }

  /** Bytes [offset, end] of a file with bytes, retried (a body cut short too). */
  private fetchRange(id: string, offset: number, end: number, size: number, opts: ReadOptions, what: string): Promise<Buffer> {
    return this.api.call(
      what,
      async () => {
        let a;
        try {
          a = await this.api.media.get(id, `bytes=${offset}-${end}`, opts.signal);
        } catch (err) {
          if (httpStatus(err) === 416) return Buffer.alloc(0); // shrank since the metadata was read
          throw err;
        }
        const buf = await bufferedBody(a.body, a.contentLength);
        if (a.status === 200) return buf.subarray(offset, end + 1); // a server that ignores Range
        if (rangeStart(a) !== offset) throw new FsError('EIO', `${what}: Drive answered another range (${a.contentRange})`);
        if (buf.length !== end - offset + 1 && buf.length < size - offset) throw retryableEio(`${what}: body truncated (${buf.length} of ${end - offset + 1} bytes)`);
        return buf;
      },
      opts.signal,
    );
  }

  /** One download (ranged when `range` is given) with retries before its first byte; undefined for a 416 (a range at or past the end). */
  private download(id: string, range: string | undefined, opts: ReadOptions, what: string): Promise<MediaAnswer | undefined> {
    return this.api.call(
      what,
      async () => {
        try {
          return await this.api.media.get(id, range, opts.signal);
        } catch (err) {
          if (httpStatus(err) === 416) return undefined;
          throw err;
        }
      },
      opts.signal,
    );
  }

  /**
   * One ranged download (`alt=media`, Range) of the file as it is now, the body handed over as
   * it arrives (see Provider.readRangeStream): ESTALE when its version is not `opts.version`.
   * The version is checked on metadata asked for at the same time as the bytes (the id comes from
   * the folder listing), so every request is checked without a round trip added before it.
   * Google Docs exports and servers that ignore Range are answered from a buffered readRange.
   */
  async readRangeStream(path: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Readable> {
    const rel = normalizeRel(path);
    checkRange(offset, length);
    const what = `read ${rel} [${offset}+${length}]`;
    if (rel === '') throw new FsError('EISDIR', `${what}: the root is a directory`);
    if (length === 0) return Readable.from([]);
    const listed = await this.resolve(rel, what);
    if (listed.kind !== 'file') return Readable.from([await this.readRange(path, offset, length, opts)]);
    const range = `bytes=${offset}-${offset + length - 1}`;
    const [meta, got] = await Promise.allSettled([this.readable(rel, opts, what, 0), this.download(listed.id, range, opts, what)]);
    if (meta.status === 'rejected' || meta.value.id !== listed.id || meta.value.kind !== 'file') {
      if (got.status === 'fulfilled') got.value?.body.destroy();
      if (meta.status === 'rejected') throw meta.reason;
      // The listing was out of date (another file under that name now): ask for the one the metadata names.
      if (meta.value.kind !== 'file') return Readable.from([await this.readRange(path, offset, length, opts)]);
      return this.streamOf(await this.download(meta.value.id, range, opts, what), meta.value, path, offset, length, opts);
    }
    if (got.status === 'rejected') throw got.reason;
    return this.streamOf(got.value, meta.value, path, offset, length, opts);
  }

  /** The body of a 206 that starts at `offset`; anything else is read again through readRange (or is empty past the end). */
  private async streamOf(a: MediaAnswer | undefined, n: Node, path: string, offset: number, length: number, opts: ReadOptions): Promise<Readable> {
    if (!a || offset >= Number(n.file.size ?? 0)) {
      a?.body.destroy();
      return Readable.from([]);
    }
    if (a.status === 206 && rangeStart(a) === offset) {
      a.body.on('error', () => undefined); // the consumer sees the cut as an early end or its own error
      return a.body;
    }
    a.body.destroy();
    return Readable.from([await this.readRange(path, offset, length, opts)]);
  }

  /** The whole content; the stream fails with EIO when it ends short of the size Drive reported. */
  async readStream(path: string, opts: ReadOptions = {}): Promise<Readable> {
    const rel = normalizeRel(path);
    const what = `read ${rel}`;
    const n = await this.readable(rel, opts, what);
    if (n.kind === 'doc') return Readable.from([await this.exported(n, what)]);
    const size = Number(n.file.size ?? 0);
    if (size === 0) return Readable.from([]);
    const a = await this.download(n.id, undefined, opts, what);
    if (!a) throw new FsError('EIO', `${what}: Drive refused the download (416)`);
    const body = a.body;
    const out = new PassThrough();
    let got = 0;
    body.on('data', (c: Buffer) => {
      got += c.length;
    });
    body.on('error', (err) => out.destroy(driveError(err, what)));
    body.on('end', () => {
      if (got !== size) out.destroy(new FsError('EIO', `${what}: body ended after ${got} of ${size} bytes`));
    });
    body.pipe(out);
    return out;
  }

  async readlink(path: string): Promise<string> {
    const rel = normalizeRel(path);
    await this.resolve(rel, `readlink ${rel}`);
    throw new FsError('EINVAL', `readlink ${rel}: Drive has no symlinks`);
  }

  realPath(path: string): string {
    throw new FsError('ENOTSUP', `${path}: a Drive file has no local path`);
  }

  /** The parent folder's node and a fresh listing of it. Throws ENOENT, ENOTDIR. */
  private async parentDir(rel: string, what: string): Promise<{ dir: Node; names: Map<string, Node> }> {
    const dir = await this.resolve(parentOf(rel), what);
    if (dir.kind !== 'dir') throw new FsError('ENOTDIR', `${what}: ${parentOf(rel)} is not a directory`);
    return { dir, names: await this.folder(dir.id, what, true) };
  }

  /**
   * Uploads a local file (resumable, 8 MiB chunks) as a new file or a new content of the
   * existing one. `ifVersion` string: ESTALE unless the file still has that version (md5);
   * `null`: ESTALE when anything has that name. Drive has no conditional upload, so the check
   * is made on fresh metadata just before the session opens: a change landing in between is
   * not caught. Throws EROFS (also for a Google Docs export), EISDIR, ENOENT, ESTALE, EACCES, EHOSTDOWN, EIO.
   */
  async putFile(path: string, sourceFile: string, opts: PutOptions = {}): Promise<ProviderEntry> {
    const rel = normalizeRel(path);
    const what = `upload ${rel}`;
    this.writable(what);
    if (rel === '') throw new FsError('EISDIR', `${what}: the root is a directory`);
    const { dir, names } = await this.parentDir(rel, what);
    const name = baseName(rel);
    let existing = names.get(name);
    if (existing) existing = { ...existing, file: { ...(await this.api.getMeta(existing.id, what)), name: existing.name, id: existing.file.id } };
    if (existing?.kind === 'dir') throw new FsError('EISDIR', `${what}: is a directory`);
    if (existing?.kind === 'doc') throw new FsError('EROFS', `${what}: a Google Docs file appears as a read-only export`);
    if (opts.ifVersion === null && existing) throw new FsError('ESTALE', `${what}: a file appeared there on Drive (version ${this.versionOf(existing)})`);
    if (typeof opts.ifVersion === 'string') {
      if (!existing) throw new FsError('ESTALE', `${what}: the file was removed on Drive since version ${opts.ifVersion}`);
      if (this.versionOf(existing) !== opts.ifVersion)
        throw new FsError('ESTALE', `${what}: the file changed on Drive (version ${this.versionOf(existing)}, this change was based on ${opts.ifVersion})`);
    }
    const size = (
      await fsp.stat(sourceFile).catch((err: Error) => {
        throw new FsError('ENOENT', `${what}: cannot read ${sourceFile}: ${err.message}`, err);
      })
    ).size;
    const f = existing
      ? await resumableUpload(this.api, sourceFile, size, { fileId: existing.id, meta: {} }, what)
      : await resumableUpload(this.api, sourceFile, size, { meta: { name, parents: [dir.id] } }, what);
    this.forget(dir.id);
    const n: Node = { id: f.id!, selfId: f.id!, name, kind: 'file', file: f };
    return { ...(await this.entry(n, what)), name };
  }

  async mkdir(path: string): Promise<void> {
    const rel = normalizeRel(path);
    const what = `mkdir ${rel}`;
    this.writable(what);
    if (rel === '') throw new FsError('EEXIST', `${what}: already exists`);
    const { dir, names } = await this.parentDir(rel, what);
    if (names.has(baseName(rel))) throw new FsError('EEXIST', `${what}: already exists`);
    await this.api.create({ name: baseName(rel), mimeType: FOLDER, parents: [dir.id] }, what);
    this.forget(dir.id);
  }

  /** Moves to Drive's trash (recoverable there for 30 days). */
  async remove(path: string): Promise<void> {
    const rel = normalizeRel(path);
    const what = `remove ${rel}`;
    this.writable(what);
    if (rel === '') throw new FsError('EINVAL', `${what}: the root of a location cannot be removed`);
    const n = await this.resolve(rel, what);
    if (n.kind === 'dir' && n.selfId === n.id && (await this.folder(n.id, what, true)).size > 0) throw new FsError('ENOTEMPTY', `${what}: directory not empty`);
    await this.api.update(n.selfId, { trashed: true }, what);
    this.forget();
  }

  /** files.update with the new name and parents: atomic, for a whole directory too. A replaced target goes to the trash first. */
  async rename(from: string, to: string): Promise<void> {
    const src = normalizeRel(from);
    const dst = normalizeRel(to);
    const what = `rename ${src} -> ${dst}`;
    this.writable(what);
    if (src === '' || dst === '') throw new FsError('EINVAL', `${what}: the root cannot be renamed`);
    const n = await this.resolve(src, what);
    if (src === dst) return;
    if (dst.startsWith(`${src}/`)) throw new FsError('EINVAL', `${what}: cannot move a directory into itself`);
    const from0 = await this.resolve(parentOf(src), what);
    const { dir, names } = await this.parentDir(dst, what);
    const target = names.get(baseName(dst));
    if (target && target.selfId !== n.selfId) {
      if (n.kind !== 'dir' && target.kind === 'dir') throw new FsError('EISDIR', `${what}: the target is a directory`);
      if (n.kind === 'dir' && target.kind !== 'dir') throw new FsError('ENOTDIR', `${what}: the target is a file`);
      if (target.kind === 'dir' && (await this.folder(target.id, what, true)).size > 0) throw new FsError('ENOTEMPTY', `${what}: the target directory is not empty`);
      await this.api.update(target.selfId, { trashed: true }, what);
    }
    const move = from0.id !== dir.id ? { add: dir.id, remove: from0.id } : undefined;
    await this.api.update(n.selfId, { name: baseName(dst) }, what, move);
    this.forget();
  }

  /** Every file and folder under the location, incrementally through changes.list (gdrive-changes.ts). Throws FsError. */
  walk(): AsyncIterable<WalkedObject> {
    return walkIncremental(this, this.opts.homeDir, `gdrive://${this.loc.folderId}?root=${this.loc.rootUrl}`, `list gdrive://${this.loc.folderId}`);
  }

  async close(): Promise<void> {
    this.apiInstance?.media.close();
    this.folders.clear();
    this.exports.clear();
  }
}
