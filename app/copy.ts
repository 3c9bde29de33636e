import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { blake3Hex } from '../cache/checksum';
import { blockCount, blockHashAt, type Blob } from '../index/blobs';
import type { Entry, EntryFields } from '../index/entries';
import type { Location } from '../index/locations';
import { FsError, isFsError } from '../core/fs-error';
import { joinRel, splitPath } from '../core/paths';
import type { Provider, ProviderEntry } from '../core/provider';
import type { Home } from './home';
import { virtualPath } from '../mount/vfs/namespace';
import type { ProviderPool, Replicas } from '../mount/vfs/replicas';
import { fetchVerified } from '../mount/vfs/verified-fetch';

/** The `vdfs copy --json` document. */
export interface CopyReport {
  from: string;
  to: string;
  hash: string;
  size: number;
  /** The best source (first tried; later ones are used when it fails or returns bad blocks). */
  source: string | null;
  /** The target's provider copied its own object (S3 CopyObject of the indexed version): nothing was fetched. */
  serverSide: boolean;
  dryRun: boolean;
  /** The target already holds this content: nothing was written. */
  alreadyThere: boolean;
  /** Verified bytes kept from an interrupted run. */
  resumedBytes: number;
  fetchedBytes: number;
}

export interface CopyOptions {
  dryRun?: boolean;
  /** At most this many bytes per second (0: unlimited). */
  rateBytes?: number;
  progress?: (done: number, total: number) => void;
}

/**
 * Adds a replica of a file's content at `dir/<name>` in another location: fetched from the best
 * replica into `HOME/copies/` (block by block, verified; a partial file is resumed after a
 * crash from its longest verified prefix), written through the target's provider only where
 * nothing is yet, and indexed. Throws EISDIR (not a file), ENOENT, EEXIST (other content at the
 * target), EHOSTDOWN/EIO (no good source), what the provider's putFile throws.
 */
export class Copier {
  constructor(
    private readonly home: Home,
    private readonly providers: ProviderPool,
    private readonly replicas: Replicas,
  ) {}

  async copy(src: { location: Location; entry: Entry; rel: string }, target: Location, dir: string, opts: CopyOptions = {}): Promise<CopyReport> {
    const e = src.entry;
    if (e.type !== 'file') throw new FsError('EISDIR', `${virtualPath(src.location.name, src.rel)} is a ${e.type}: copy takes a file`);
    if (!e.hash)
      throw new FsError('EINVAL', `${virtualPath(src.location.name, src.rel)} is not hashed yet, so a copy could not be verified: vdfs scan ${src.location.name} --hash`);
    const blob = this.home.blobs.get(e.hash);
    if (!blob) throw new FsError('ENOENT', `content ${e.hash.slice(0, 16)} is not known to the index`);
    const rel = joinRel(splitPath(dir).join('/'), e.name);
    const to = virtualPath(target.name, rel);
    const report: CopyReport = {
      from: virtualPath(src.location.name, src.rel),
      to,
      hash: e.hash,
      size: e.size,
      source: null,
      dryRun: !!opts.dryRun,
      serverSide: false,
      alreadyThere: false,
      resumedBytes: 0,
      fetchedBytes: 0,
    };
    if (!this.home.entries.root(target.id)) throw new FsError('ENOENT', `location ${target.name} was never scanned: vdfs scan ${target.name}`);
    if (target.readonly) throw new FsError('EROFS', `location ${target.name} is read-only`);
    const existing = this.home.entries.resolve(target.id, rel);
    if (existing) {
      if (existing.hash === e.hash) return { ...report, alreadyThere: true };
      throw new FsError('EEXIST', `${to} already exists with other content; pick another folder (--to ${target.name}:DIR)`);
    }
    const sources = this.replicas.sources(e.hash);
    const provider = this.providers.get(target);
    const sameSource = provider.copyFile ? this.home.entries.byHash(e.hash).find((x) => x.locationId === target.id && x.type === 'file' && x.version) : undefined;
    report.source = sameSource ? virtualPath(target.name, this.home.entries.pathOf(sameSource.id)) : (sources[0]?.label ?? null);
    report.serverSide = !!sameSource;
    if (opts.dryRun) return report;
    if (sameSource && (await this.serverSideCopy(provider, target, sameSource, rel, e.hash))) return report;
    report.serverSide = false;
    report.source = sources[0]?.label ?? null;
    const part = await this.partFile(blob, target, rel);
    const fromBlock = await this.verifiedPrefix(part, blob);
    report.resumedBytes = Math.min(fromBlock * blob.blockSize, blob.size);
    await this.fetchInto(part, blob, fromBlock, () => sources, report, opts);
    await this.checkWhole(part, blob);
    await this.ensureDirs(target, rel);
    let put: ProviderEntry;
    try {
      put = await provider.putFile(rel, part, { ifVersion: null });
    } catch (err) {
      if (isFsError(err) && err.code === 'ESTALE') throw new FsError('EEXIST', `${to} appeared at the target meanwhile; not overwriting it`);
      throw err;
    }
    this.index(target, rel, { type: 'file', size: put.size, mtimeSec: put.mtimeSec, mtimeNsec: put.mtimeNsec, mode: put.mode, version: put.version, hash: e.hash, target: null });
    await fsp.rm(part, { force: true });
    return report;
  }

  /**
   * The provider copies its own object (S3 CopyObject) while it is still the indexed version,
   * so the copy is that content without a byte through vdfs. False when it cannot (too big,
   * changed meanwhile, ...): the caller streams instead, and reports the real error if any.
   */
  private async serverSideCopy(provider: Provider, target: Location, from: Entry, rel: string, hash: string): Promise<boolean> {
    try {
      await this.ensureDirs(target, rel);
      const put = await provider.copyFile!(this.home.entries.pathOf(from.id), rel, { fromVersion: from.version! });
      this.index(target, rel, { type: 'file', size: put.size, mtimeSec: put.mtimeSec, mtimeNsec: put.mtimeNsec, mode: put.mode, version: put.version, hash, target: null });
      return true;
    } catch {
      return false;
    }
  }

  /** The partial file of this copy, the same across runs (so a killed copy resumes). */
  private async partFile(blob: Blob, target: Location, rel: string): Promise<string> {
    const dir = join(this.home.dir, 'copies');
    await fsp.mkdir(dir, { recursive: true });
    const key = createHash('sha256').update(`${blob.hash}\0${target.id}\0${rel}`).digest('hex').slice(0, 32);
    return join(dir, `${key}.part`);
  }

  /** How many whole blocks at the start of `part` match the blob (the rest is fetched again). */
  private async verifiedPrefix(part: string, blob: Blob): Promise<number> {
    const fh = await fsp.open(part, 'r').catch(() => undefined);
    if (!fh) return 0;
    try {
      const n = blockCount(blob.size, blob.blockSize);
      const buf = Buffer.allocUnsafe(blob.blockSize);
      for (let i = 0; i < n; i++) {
        const want = Math.min(blob.blockSize, blob.size - i * blob.blockSize);
        const { bytesRead } = await fh.read(buf, 0, want, i * blob.blockSize);
        if (bytesRead !== want || blake3Hex(buf.subarray(0, want)) !== blockHashAt(blob, i)) return i;
      }
      return n;
    } finally {
      await fh.close();
    }
  }

  private async fetchInto(part: string, blob: Blob, fromBlock: number, sources: Parameters<typeof fetchVerified>[1], report: CopyReport, opts: CopyOptions): Promise<void> {
    const fh = await fsp.open(part, fromBlock === 0 ? 'w' : 'r+');
    const t0 = process.hrtime.bigint();
    try {
      await fh.truncate(Math.min(fromBlock * blob.blockSize, blob.size));
      opts.progress?.(report.resumedBytes, blob.size);
      await fetchVerified(
        blob,
        sources,
        async (i, b) => {
          await fh.write(b, 0, b.length, i * blob.blockSize);
          report.fetchedBytes += b.length;
          opts.progress?.(report.resumedBytes + report.fetchedBytes, blob.size);
          const rate = opts.rateBytes ?? 0;
          if (rate > 0) {
            const aheadMs = (report.fetchedBytes / rate) * 1000 - Number(process.hrtime.bigint() - t0) / 1e6;
            if (aheadMs > 1) await new Promise((r) => setTimeout(r, aheadMs));
          }
        },
        fromBlock,
      );
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  /** The whole staged file against the content hash (what b3sum prints), before it is written anywhere. */
  private async checkWhole(part: string, blob: Blob): Promise<void> {
    const h = new Blake3Hasher();
    const fh = await fsp.open(part, 'r');
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let at = 0; ;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, at);
        if (bytesRead === 0) break;
        h.update(buf.subarray(0, bytesRead));
        at += bytesRead;
      }
    } finally {
      await fh.close();
    }
    const sum = h.digest('hex');
    if (sum !== blob.hash) {
      await fsp.rm(part, { force: true });
      throw new FsError('EIO', `the copied content hashes to ${sum.slice(0, 16)}…, not ${blob.hash.slice(0, 16)}…; nothing was written (run it again)`);
    }
  }

  /** Creates (through the provider) and indexes the folders leading to `rel`. */
  private async ensureDirs(target: Location, rel: string): Promise<void> {
    const provider = this.providers.get(target);
    const parts = splitPath(rel).slice(0, -1);
    let cur = '';
    for (const name of parts) {
      cur = joinRel(cur, name);
      if (this.home.entries.resolve(target.id, cur)) continue;
      await provider.mkdir(cur).catch((err) => {
        if (!(isFsError(err) && err.code === 'EEXIST')) throw err;
      });
      const st = await provider.stat(cur);
      if (st.type !== 'dir') throw new FsError('ENOTDIR', `${virtualPath(target.name, cur)} is not a folder`);
      this.index(target, cur, { type: 'dir', size: 0, mtimeSec: st.mtimeSec, mtimeNsec: st.mtimeNsec, mode: st.mode, version: st.version, hash: null, target: null });
    }
  }

  private index(target: Location, rel: string, fields: EntryFields): void {
    const parts = splitPath(rel);
    this.home.db
      .transaction(() => {
        const parent = this.home.entries.resolve(target.id, parts.slice(0, -1).join('/'));
        if (!parent) throw new FsError('ENOENT', `${virtualPath(target.name, parts.slice(0, -1).join('/'))} is not in the index`);
        const old = this.home.entries.child(parent.id, parts[parts.length - 1]);
        if (old) this.home.entries.update(old, fields, rel);
        else this.home.entries.insert(target.id, parent.id, parts[parts.length - 1], fields, rel);
      })
      .immediate();
  }
}
