import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { HashPool } from '../../index/hash-pool';
import { acquireScanLock } from '../../index/scan-lock';
import { scanLocalLocation, type ScanProgress, type ScanSummary } from '../../index/scanner';
import type { ScanContext } from '../../index/scan-types';
import type { Location } from '../../index/locations';
import { isListable, scanRemoteLocation } from '../../index/remote-scan';
import { openProvider } from '../../app/provider-registry';
import { FsError, isFsError } from '../../core/fs-error';
import { EXIT_CODES } from './exit-codes';
import { formatSize } from '../../app/config';
import type { Home } from '../../app/home';
import { openHome, type GlobalOpts } from './context';
import { displayName, printJson } from './output';

function progressBar(): { update(p: ScanProgress): void; stop(): void } {
  const bar = new SingleBar({
    format: '{phase} |{bar}| {percentage}% {files} files {size} {rate}/s ETA {eta_formatted}',
    hideCursor: true,
    clearOnComplete: true,
  });
  let started = false;
  const t0 = Date.now();
  return {
    update(p) {
      const total = p.phase === 'walk' ? Math.max(p.files, 1) : Math.max(p.toHashBytes, 1);
      const value = p.phase === 'walk' ? p.files : p.hashedBytes;
      const payload = {
        phase: p.phase === 'walk' ? 'listing' : 'hashing',
        files: p.phase === 'walk' ? p.files : `${p.hashedFiles}/${p.toHashFiles}`,
        size: p.phase === 'walk' ? formatSize(p.bytes) : `${formatSize(p.hashedBytes)}/${formatSize(p.toHashBytes)}`,
        rate: formatSize((p.phase === 'walk' ? 0 : p.hashedBytes) / Math.max((Date.now() - t0) / 1000, 0.001)),
      };
      if (!started) {
        bar.start(total, value, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(value, payload);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** The outcome of `vdfs scan`: the summary, plus the first whole-location failure (for the exit code). */
export interface ScanOutcome {
  summary: ScanSummary;
  failed?: FsError;
}

/** Scan options as `vdfs scan` takes them. */
interface ScanFlags {
  rehash?: boolean;
  hash?: boolean;
}

/**
 * One location, by what its provider can do: files on this machine (`features.localFiles`) are
 * walked and hashed; a listable source (S3, Drive) is indexed from its listing, with no
 * download unless --hash. Throws FsError (ENOTSUP for a source that can do neither).
 */
async function scanOne(home: Home, ctx: ScanContext, loc: Location, o: ScanFlags, bar: ReturnType<typeof progressBar> | undefined): Promise<ScanSummary> {
  const onProblem = (p: { path: string; message: string }) => process.stderr.write(`vdfs scan: ${displayName(`${loc.name}/${p.path}`)}: ${p.message}\n`);
  const onProgress = bar ? (p: ScanProgress) => bar.update(p) : undefined;
  const provider = openProvider(loc, home);
  try {
    if (provider.features.localFiles) return await scanLocalLocation(ctx, loc, loc.uri, { rehash: o.rehash, onProgress, onProblem });
    if (!isListable(provider)) throw new FsError('ENOTSUP', `scanning ${loc.kind} locations is not supported yet (${loc.name})`);
    return await scanRemoteLocation(ctx, loc, provider, { rehash: o.rehash, hash: o.hash || o.rehash, onProgress, onProblem });
  } finally {
    await provider.close();
  }
}

/**
 * Scans the named locations (every location this node owns when none are named: a paired
 * node's are replicated from it, not scanned), one scan per home at a time. Problems with single entries go to stderr and are counted; a location that cannot
 * be scanned at all (unplugged, not a directory) is reported and the others still run.
 * Throws ENOENT (unknown location / none), EBUSY (another scan holds the lock).
 */
export async function scanLocations(home: Home, names: string[], opts: ScanFlags & { tty: boolean }): Promise<ScanOutcome> {
  const self = home.nodeId;
  const locs = names.length ? names.map((n) => home.locations.get(n)) : home.locations.list().filter((l) => l.ownerNode === self);
  if (locs.length === 0) throw new FsError('ENOENT', 'no locations to scan: add one with `vdfs location add NAME /path`');
  const release = acquireScanLock(home.dir, locs.map((l) => l.name).join(', '));
  const pool = new HashPool();
  const total: ScanSummary = { files: 0, dirs: 0, bytes: 0, hashed: 0, unchanged: 0, errors: 0, seconds: 0 };
  let failed: FsError | undefined;
  const t0 = process.hrtime.bigint();
  try {
    for (const loc of locs) {
      const bar = opts.tty ? progressBar() : undefined;
      try {
        const ctx = { db: home.db, entries: home.entries, blobs: home.blobs, locations: home.locations, pool, blockSize: home.config.blockSize, statePaths: home.statePaths };
        const s = await scanOne(home, ctx, loc, opts, bar);
        for (const k of ['files', 'dirs', 'bytes', 'hashed', 'unchanged', 'errors'] as const) total[k] += s[k];
      } catch (err) {
        if (!isFsError(err)) throw err;
        bar?.stop();
        process.stderr.write(`vdfs scan: ${loc.name}: ${err.message}\n`);
        total.errors++;
        failed ??= err;
      } finally {
        bar?.stop();
      }
    }
  } finally {
    await pool.close();
    release();
  }
  total.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { summary: total, failed };
}

export function registerScanCommand(program: Command, g: () => GlobalOpts): void {
  program
    .command('scan [names...]')
    .description('index locations: list every entry, hash new and changed files')
    .option('--rehash', 'hash every file again, even unchanged ones')
    .option('--hash', 'for cloud locations: download and hash files not hashed yet (local files are always hashed)')
    .option('--json', 'print the summary as JSON')
    .action(async (names: string[], o: { rehash?: boolean; hash?: boolean; json?: boolean }) => {
      const home = openHome(g());
      const { summary: s, failed } = await scanLocations(home, names, { rehash: o.rehash, hash: o.hash, tty: !o.json && !!process.stderr.isTTY });
      if (o.json) printJson(s);
      else
        process.stdout.write(
          `${s.files} files, ${s.dirs} dirs, ${formatSize(s.bytes)}; hashed ${s.hashed}, unchanged ${s.unchanged}, ` + `${s.errors} problems, ${s.seconds.toFixed(2)} s\n`,
        );
      // A whole location failing exits with its code (EHOSTDOWN: 6, ...); problems with
      // single entries exit 1. The summary is printed either way.
      if (failed) process.exitCode = EXIT_CODES[failed.code];
      else if (s.errors > 0) process.exitCode = 1;
    });
}
