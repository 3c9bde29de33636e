import { constants as C, promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { fieldsOf, type Entry } from '../index/entries';
import type { Location } from '../index/locations';
import { filesUnder } from '../index/subtree';
import { VerifiedStore } from '../index/verified';
import { FsError, toFsError } from '../core/fs-error';
import { localVersion } from '../core/local-stat';
import type { Home } from './home';
import { virtualPath } from '../mount/vfs/namespace';
import type { ProviderPool, Replicas } from '../mount/vfs/replicas';
import { fetchVerified } from '../mount/vfs/verified-fetch';

const CHUNK = 1 << 20;

/** What fsck found for one file. `changed`: edited since it was indexed (not rot: rescan it); `offline`: its location is unreachable. */
export type FsckStatus = 'ok' | 'rot' | 'missing' | 'changed' | 'offline' | 'error';

export interface FsckItem {
  path: string;
  status: FsckStatus;
  repaired: boolean;
  /** Why, for anything but ok. */
  detail?: string;
}

/** The `vdfs fsck --json` document. */
export interface FsckReport {
  scope: string;
  checked: number;
  bytes: number;
  ok: number;
  /** Every file that was not ok (rot, missing, changed, offline, error). */
  problems: FsckItem[];
  repaired: number;
  /** Rot, missing and errors not repaired: a non-zero exit. */
  unrepaired: number;
  seconds: number;
}

/** What one read found; `version` is the local file's version token when it was read. */
interface Found {
  status: FsckStatus;
  detail?: string;
  version?: string;
}

export interface FsckOptions {
  repair: boolean;
  /** Read at most this many bytes per second (0: unlimited), so the drive stays usable. */
  rateBytes: number;
}

/** Sleeps just enough to keep `bytes` read since `startNs` under `rate` per second. */
async function throttle(bytes: number, startNs: bigint, rate: number): Promise<void> {
  if (rate <= 0) return;
  const aheadMs = (bytes / rate) * 1000 - Number(process.hrtime.bigint() - startNs) / 1e6;
  if (aheadMs > 1) await new Promise((r) => setTimeout(r, aheadMs));
}

/**
 * Re-reads files and checks them against the index: bit rot (same version, other content),
 * missing files, files changed since they were indexed. With `repair`, restores rot and
 * missing files of local locations from a verified good replica, unless the file changed
 * since it was read. Records last-verified times. Throws only SQLite errors.
 */
export class Fsck {
  private readonly verified: VerifiedStore;
  private readBytes = 0;
  private readonly started = process.hrtime.bigint();

  constructor(
    private readonly home: Home,
    private readonly providers: ProviderPool,
    private readonly replicas: Replicas,
    private readonly opts: FsckOptions,
  ) {
    this.verified = new VerifiedStore(home.db);
  }

  async run(scope: { location: Location; entry: Entry; vpath: string }[]): Promise<FsckReport> {
    const t0 = Date.now();
    const rep: FsckReport = { scope: scope.map((s) => s.vpath).join(' '), checked: 0, bytes: 0, ok: 0, problems: [], repaired: 0, unrepaired: 0, seconds: 0 };
    for (const s of scope) {
      for (const f of filesUnder(this.home.db, s.entry.id)) {
        const e = this.home.entries.get(f.id);
        if (!e || !e.hash) continue; // nothing to check against yet
        const rel = this.home.entries.pathOf(e.id);
        const item = await this.checkOne(s.location, e, rel);
        rep.checked++;
        if (item.status === 'ok') {
          rep.ok++;
          rep.bytes += e.size;
          continue;
        }
        rep.problems.push(item);
        if (item.repaired) rep.repaired++;
        else if (item.status === 'rot' || item.status === 'missing' || item.status === 'error') rep.unrepaired++;
      }
    }
    rep.seconds = (Date.now() - t0) / 1000;
    return rep;
  }

  /** Whether the location's provider has real files here (capabilities, not the kind); false when it cannot be opened. */
  private isLocal(loc: Location): boolean {
    try {
      return this.providers.get(loc).features.localFiles;
    } catch {
      return false;
    }
  }

  private async checkOne(loc: Location, e: Entry, rel: string): Promise<FsckItem> {
    const path = virtualPath(loc.name, rel);
    // Files on this machine are read and repaired in place; other sources are read through their provider.
    const local = this.isLocal(loc);
    const found = local ? await this.readLocal(loc, e, rel) : await this.readRemote(loc, e, rel);
    if (found.status === 'ok') {
      this.verified.record(e.id, e.hash!, true);
      return { path, status: 'ok', repaired: false };
    }
    if (found.status === 'rot') this.verified.record(e.id, e.hash!, false);
    const item: FsckItem = { path, status: found.status, repaired: false, detail: found.detail };
    if (this.opts.repair && local && (found.status === 'rot' || found.status === 'missing')) {
      try {
        const outcome = await this.repairLocal(loc, e, rel, found.status === 'rot' ? found.version! : null);
        if (outcome === 'changed') return { path, status: 'changed', repaired: false, detail: 'changed while fsck ran: an edit, left alone (rescan it)' };
        item.repaired = true;
        item.detail = `${item.detail}; restored from a verified replica`;
      } catch (err) {
        item.detail = `${item.detail}; repair failed: ${(err as Error).message}`;
      }
    } else if (this.opts.repair && (found.status === 'rot' || found.status === 'missing')) {
      item.detail = `${item.detail}; only local replicas are repaired`;
    }
    return item;
  }

  /** Hashes the real file if it still has the indexed version. */
  private async readLocal(loc: Location, e: Entry, rel: string): Promise<Found> {
    const file = this.providers.get(loc).realPath(rel);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, C.O_RDONLY | C.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        return (await this.providers.get(loc).isOnline()) ? { status: 'missing', detail: 'the file is gone' } : { status: 'offline', detail: `${loc.name} is not reachable` };
      }
      return { status: 'error', detail: toFsError(err, file).message };
    }
    try {
      const st = await fh.stat({ bigint: true });
      const version = localVersion(st);
      if (version !== e.version) return { status: 'changed', detail: 'modified since it was indexed: an edit, not rot (vdfs scan to index it)' };
      const sum = await this.hashHandle(fh, e.size);
      return sum === e.hash
        ? { status: 'ok' }
        : { status: 'rot', version, detail: `content hash ${sum.slice(0, 16)}… is not the indexed ${e.hash!.slice(0, 16)}… although the file was not modified` };
    } catch (err) {
      return { status: 'error', detail: toFsError(err, file).message };
    } finally {
      await fh.close();
    }
  }

  private async hashHandle(fh: fsp.FileHandle, size: number): Promise<string> {
    const h = new Blake3Hasher();
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let at = 0; ;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, at);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      at += bytesRead;
      this.readBytes += bytesRead;
      await throttle(this.readBytes, this.started, this.opts.rateBytes);
      if (at > size) break; // longer than indexed: the hash will differ anyway
    }
    return h.digest('hex');
  }

  /** Reads a cloud or peer replica through its provider, at the indexed version. */
  private async readRemote(loc: Location, e: Entry, rel: string): Promise<Found> {
    const h = new Blake3Hasher();
    try {
      const p = this.providers.get(loc);
      for (let at = 0; at < e.size; at += CHUNK) {
        const b = await p.readRange(rel, at, Math.min(CHUNK, e.size - at), { version: e.version ?? undefined });
        h.update(b);
        this.readBytes += b.length;
        await throttle(this.readBytes, this.started, this.opts.rateBytes);
      }
    } catch (err) {
      const fe = toFsError(err, virtualPath(loc.name, rel));
      if (fe.code === 'EHOSTDOWN') return { status: 'offline', detail: fe.message };
      if (fe.code === 'ENOENT') return { status: 'missing', detail: fe.message };
      if (fe.code === 'ESTALE' || /changed/.test(fe.message)) return { status: 'changed', detail: fe.message };
      return { status: 'error', detail: fe.message };
    }
    const sum = h.digest('hex');
    return sum === e.hash ? { status: 'ok' } : { status: 'rot', detail: `content hash ${sum.slice(0, 16)}… is not the indexed ${e.hash!.slice(0, 16)}…` };
  }

  /**
   * Writes the content from another replica beside the file and renames it into place, but
   * only if the file is still what fsck saw (`seenVersion`, or still absent when null):
   * otherwise 'changed' and nothing is touched. Throws EHOSTDOWN/EIO when no good replica answers.
   */
  private async repairLocal(loc: Location, e: Entry, rel: string, seenVersion: string | null): Promise<'repaired' | 'changed'> {
    const blob = this.home.blobs.get(e.hash!);
    if (!blob) throw new FsError('ENOENT', 'the content is not known to the index');
    const self = virtualPath(loc.name, rel);
    const file = this.providers.get(loc).realPath(rel);
    await fsp.mkdir(dirname(file), { recursive: true });
    const tmp = join(dirname(file), `.vdfs-tmp-repair-${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx', e.mode & 0o7777 || 0o644);
    try {
      let at = 0;
      await fetchVerified(
        blob,
        () => this.replicas.sources(e.hash!).filter((s) => s.label !== self),
        async (_i, b) => {
          await fh.write(b, 0, b.length, at);
          at += b.length;
        },
      );
      await fh.datasync();
      await fh.close();
      const now = await fsp.stat(file, { bigint: true }).then(localVersion, () => null);
      if (now !== seenVersion) {
        await fsp.rm(tmp, { force: true });
        return 'changed';
      }
      await fsp.utimes(tmp, new Date(e.mtimeSec * 1000 + e.mtimeNsec / 1e6), new Date(e.mtimeSec * 1000 + e.mtimeNsec / 1e6));
      await fsp.rename(tmp, file);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    const st = await fsp.stat(file, { bigint: true });
    this.home.db
      .transaction(() =>
        this.home.entries.update(
          e,
          { ...fieldsOf(e), version: localVersion(st), mtimeSec: Number(st.mtimeNs / 1_000_000_000n), mtimeNsec: Number(st.mtimeNs % 1_000_000_000n) },
          rel,
        ),
      )
      .immediate();
    this.verified.record(e.id, e.hash!, true);
    return 'repaired';
  }
}
