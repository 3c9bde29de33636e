import { Readable } from 'node:stream';
import { FsError } from '../../core/fs-error';
import { splitPath } from '../../core/paths';
import type { EntryType, Provider, ProviderEntry, ProviderFeatures, ReadOptions } from '../../core/provider';
import type { NodeKeys } from '../../core/node-identity';
import { PeerClient, errorOf } from './peer-client';

/** One entry of the replicated tree, as the index keeps it (index/entries.ts `Entry` is one). */
export interface ReplicatedEntry {
  id: number;
  name: string;
  type: EntryType;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  mode: number;
  version: string | null;
  hash: string | null;
  target: string | null;
}

/**
 * What a peer provider needs from the node that opens it, given instead of reaching into the
 * home: this node's keys, the paired owner's address, and the replicated tree (index/entries.ts
 * `EntryStore` is one). Each may throw what the index throws (SqliteError) or, for keys, EIO.
 */
export interface PeerProviderContext {
  /** This node's TLS identity; undefined before `vdfs init` made keys. */
  keys(): NodeKeys | undefined;
  /** The addresses of a paired node (the first is where it was last seen); undefined when not paired. */
  peerAddresses(nodeId: string): string[] | undefined;
  /** The replicated tree of peer locations. */
  readonly tree: {
    root(locationId: number): ReplicatedEntry | undefined;
    child(parentId: number, name: string): ReplicatedEntry | undefined;
    /** Ordered by name. */
    children(parentId: number): ReplicatedEntry[];
  };
}

const HASH_RE = /^[0-9a-f]{64}$/;
/** A peer that sends nothing for this long is treated as gone, so the reader fails over. */
const IDLE_MS = 5000;

/** `peer://PEER/LOCATION` → its parts. Throws EINVAL. */
export function parsePeerUri(uri: string): { peer: string; location: string } {
  const m = /^peer:\/\/([^/]+)\/([A-Za-z0-9._-]+)\/?$/.exec(uri);
  if (!m) throw new FsError('EINVAL', `${JSON.stringify(uri)} is not peer://PEER/LOCATION`);
  return { peer: decodeURIComponent(m[1]), location: m[2] };
}

/**
 * A location owned by a paired node. The tree is the replicated one in our index (so `stat`
 * and `list` work offline); content is fetched from the owner **by hash** (`GET
 * /v1/blobs/<hash>` with one Range), never by path. The read's `version` is the content hash
 * (ReplicaIndex stores it so). Read-only: writes throw EROFS. Methods throw FsError as Provider says.
 */
export class PeerProvider implements Provider {
  readonly kind = 'peer';
  readonly features: ProviderFeatures = { write: false, symlinks: true, localFiles: false };
  private readonly clients = new Map<string, PeerClient>();
  private goodUrl = '';

  constructor(
    private readonly loc: { id?: number; uri: string; ownerNode?: string },
    private readonly ctx: PeerProviderContext,
  ) {}

  /** The owner's addresses, the one that last answered first. Throws EACCES (not paired), EHOSTDOWN (none known). */
  private addresses(): { nodeId: string; urls: string[] } {
    const owner = this.loc.ownerNode;
    const addresses = owner ? this.ctx.peerAddresses(owner) : undefined;
    if (!owner || !addresses) throw new FsError('EACCES', `${this.loc.uri}: its node is not paired any more`);
    const urls = addresses.filter((u) => typeof u === 'string' && u);
    if (urls.length === 0) throw new FsError('EHOSTDOWN', `${this.loc.uri}: no known address for its node`);
    const good = urls.indexOf(this.goodUrl);
    if (good > 0) urls.unshift(...urls.splice(good, 1));
    return { nodeId: owner, urls };
  }

  /** The client for one address of the owner (kept while it is used). Throws EACCES without keys. */
  private clientFor(nodeId: string, url: string): PeerClient {
    const key = `${nodeId}@${url}`;
    let c = this.clients.get(key);
    if (!c) {
      const keys = this.ctx.keys();
      if (!keys) throw new FsError('EACCES', 'this node has no keys yet: run vdfs init');
      c = new PeerClient(url, nodeId, keys);
      this.clients.set(key, c);
    }
    return c;
  }

  /**
   * Runs `fn` against the owner's addresses in turn (the last one that answered first), moving
   * on when one is unreachable (EHOSTDOWN) or refuses us (EACCES: an address that is now
   * another node's, whose certificate is not the pinned one). Throws EHOSTDOWN when an address
   * was unreachable (the node may be away), else the last EACCES, or what `fn` throws.
   */
  private async withPeer<T>(fn: (c: PeerClient) => Promise<T>): Promise<T> {
    const { nodeId, urls } = this.addresses();
    let down: unknown;
    let refused: unknown;
    for (const url of urls) {
      try {
        const r = await fn(this.clientFor(nodeId, url));
        this.goodUrl = url;
        return r;
      } catch (err) {
        if (!(err instanceof FsError) || (err.code !== 'EHOSTDOWN' && err.code !== 'EACCES')) throw err;
        if (err.code === 'EACCES') refused = err;
        else down = err;
      }
    }
    throw down ?? refused;
  }

  async isOnline(): Promise<boolean> {
    try {
      await this.withPeer((c) => c.json('/v1/node', { idleMs: 3000 }));
      return true;
    } catch {
      return false;
    }
  }

  private row(path: string): ReplicatedEntry {
    if (this.loc.id === undefined) throw new FsError('ENOENT', `${this.loc.uri}: not replicated`);
    let cur = this.ctx.tree.root(this.loc.id);
    for (const part of splitPath(path)) {
      if (!cur) break;
      // Like a disk: a path through a file or a symlink (never followed) is ENOTDIR.
      if (cur.type !== 'dir') throw new FsError('ENOTDIR', `${path}: ${cur.name} is not a directory`);
      cur = this.ctx.tree.child(cur.id, part);
    }
    if (!cur) throw new FsError('ENOENT', `${path}: no such entry on ${this.loc.uri}`);
    return cur;
  }

  private toEntry(r: ReplicatedEntry): ProviderEntry {
    // Directories and symlinks carry no version in the replicated tree: their mtime stands in.
    const version = r.version ?? `m${r.mtimeSec}.${r.mtimeNsec}`;
    return {
      name: r.name,
      type: r.type,
      size: r.size,
      mtimeSec: r.mtimeSec,
      mtimeNsec: r.mtimeNsec,
      mode: r.mode,
      version,
      target: r.target ?? undefined,
      hash: r.hash ?? undefined,
    };
  }

  async stat(path: string): Promise<ProviderEntry> {
    return this.toEntry(this.row(path));
  }

  async list(path: string): Promise<ProviderEntry[]> {
    const r = this.row(path);
    if (r.type !== 'dir') throw new FsError('ENOTDIR', `${path} is not a directory`);
    return this.ctx.tree.children(r.id).map((x) => this.toEntry(x));
  }

  /** The content hash to ask for (the read's version, else the entry's). Throws EINVAL, EISDIR, ENOENT, EIO (not hashed). */
  private hashOf(path: string, offset: number, length: number, opts: ReadOptions): { hash: string; size?: number } {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw new FsError('EINVAL', 'offset and length must be whole numbers ≥ 0');
    if (opts.version && HASH_RE.test(opts.version)) return { hash: opts.version };
    const r = this.row(path);
    if (r.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    if (r.type === 'symlink') throw new FsError('ELOOP', `${path} is a symlink (not followed)`);
    if (!r.hash) throw new FsError('EIO', `${path}: its owner has not hashed it yet, and peers serve content by hash only`);
    return { hash: r.hash, size: r.size };
  }

  async readRange(path: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Buffer> {
    const { hash, size } = this.hashOf(path, offset, length, opts);
    if (length === 0 || (size !== undefined && offset >= size)) return Buffer.alloc(0);
    const res = await this.withPeer((c) => c.request(`/v1/blobs/${hash}`, { headers: { range: `bytes=${offset}-${offset + length - 1}` }, idleMs: IDLE_MS, signal: opts.signal }));
    if (res.status === 416) return Buffer.alloc(0); // at or past the end
    if (res.status !== 206 && res.status !== 200) throw errorOf(res, `${this.loc.uri}/${path}`);
    const body = res.status === 200 ? res.body.subarray(offset, offset + length) : res.body;
    if (body.length > length) throw new FsError('EIO', `${this.loc.uri}/${path}: the peer sent more than asked`);
    return body;
  }

  /**
   * One ranged GET of the blob, its body handed over as it arrives (see
   * Provider.readRangeStream). The bytes are the peer's word only: readers check every block
   * against its hash.
   */
  async readRangeStream(path: string, offset: number, length: number, opts: ReadOptions = {}): Promise<Readable> {
    const { hash, size } = this.hashOf(path, offset, length, opts);
    if (length === 0 || (size !== undefined && offset >= size)) return Readable.from([]);
    const what = `${this.loc.uri}/${path}`;
    // Our own HTTP/1.1 on the socket (PeerClient.openBlob): the body can go straight into the reader's blocks.
    const res = await this.withPeer((c) => c.openBlob(`/v1/blobs/${hash}`, { headers: { range: `bytes=${offset}-${offset + length - 1}` }, idleMs: IDLE_MS, signal: opts.signal }));
    if (res.status === 206) return res;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > 64 * 1024) break; // an error answer is small; anything else is not worth holding
      chunks.push(c);
    }
    res.destroy();
    if (res.status === 416) return Readable.from([]);
    if (res.status === 200) return Readable.from([await this.readRange(path, offset, length, opts)]);
    throw errorOf({ status: res.status, headers: res.headers, body: Buffer.concat(chunks) }, what);
  }

  async readStream(path: string, opts: ReadOptions = {}): Promise<Readable> {
    const r = this.row(path);
    if (r.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
    if (r.type === 'symlink') throw new FsError('ELOOP', `${path} is a symlink (not followed)`);
    const size = r.size;
    const chunk = (off: number) => this.readRange(path, off, Math.min(1 << 20, size - off), opts);
    return Readable.from(
      (async function* () {
        for (let off = 0; off < size; off += 1 << 20) yield await chunk(off);
      })(),
    );
  }

  async readlink(path: string): Promise<string> {
    const r = this.row(path);
    if (r.type !== 'symlink') throw new FsError('EINVAL', `${path} is not a symlink`);
    return r.target ?? '';
  }

  realPath(): string {
    throw new FsError('ENOTSUP', 'a peer location has no local files');
  }

  private ro(): never {
    throw new FsError('EROFS', `${this.loc.uri} is a peer location: read-only for now`);
  }

  async putFile(): Promise<ProviderEntry> {
    return this.ro();
  }
  async mkdir(): Promise<void> {
    this.ro();
  }
  async remove(): Promise<void> {
    this.ro();
  }
  async rename(): Promise<void> {
    this.ro();
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
