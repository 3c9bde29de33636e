import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { FsError } from '../core/fs-error';
import type { LocationKind } from '../index/locations';
import { LocalProvider } from '../providers/local/local-provider';
import type { Provider } from '../core/provider';
import { LOCAL_DISK_RANK } from '../mount/vfs/replicas';
import { formatS3Uri, parseS3Uri } from '../providers/s3/s3-uri';
import { parseGdriveUri } from '../providers/gdrive/gdrive-uri';
import { PeerProvider, parsePeerUri } from '../providers/peer/peer-provider';
import type { Db } from '../index/db';
import type { EntryStore } from '../index/entries';
import { PeerStore } from '../index/peer-store';
import { readKeys } from './keys';

export interface ParsedUri {
  kind: LocationKind;
  /** The canonical URI stored in the index. */
  uri: string;
  /** Another node owns it (peer://): it is added from that node and replicated, never scanned here. */
  ownedElsewhere: boolean;
}

/**
 * Recognises a location URI: s3://, gdrive://, peer://, file://, or a local path (a relative
 * one is taken from the current directory, as every shell tool does). Throws EINVAL with the
 * accepted forms.
 */
export function parseLocationUri(uri: string): ParsedUri {
  if (uri === '') throw new FsError('EINVAL', 'the location URI is empty');
  if (isAbsolute(uri)) return { kind: 'local', uri: resolve(uri), ownedElsewhere: false };
  const m = /^([a-z0-9]+):\/\//.exec(uri);
  // s3: checked and canonicalised (explicit region, normalised prefix) so one bucket prefix is one location.
  if (m && m[1] === 's3') return { kind: 's3', uri: formatS3Uri(parseS3Uri(uri)), ownedElsewhere: false };
  if (m && m[1] === 'gdrive') {
    parseGdriveUri(uri);
    return { kind: 'gdrive', uri, ownedElsewhere: false };
  }
  if (m && m[1] === 'peer') return { kind: m[1], uri, ownedElsewhere: true };
  if (uri.startsWith('file://')) return { kind: 'local', uri: resolve(decodeURIComponent(uri.slice('file://'.length))), ownedElsewhere: false };
  if (!m) return { kind: 'local', uri: resolve(uri), ownedElsewhere: false };
  throw new FsError(
    'EINVAL',
    `cannot use ${JSON.stringify(uri)} as a location: give an absolute path, s3://BUCKET[/PREFIX]?endpoint=URL&region=R, gdrive://FOLDER_ID or peer://PEER/LOCATION`,
  );
}

/**
 * Checks that a new location's source is usable now. Throws ENOENT, ENOTDIR, ENOTSUP. An S3
 * location is only checked for form here (this check is synchronous): the bucket may be
 * offline when it is added, like an unplugged drive, and `vdfs scan` reports what is wrong.
 */
export function checkNewLocation(p: ParsedUri): void {
  if (p.kind === 's3') {
    parseS3Uri(p.uri);
    return;
  }
  if (p.kind === 'gdrive') {
    parseGdriveUri(p.uri);
    return;
  } // checked by `vdfs scan`, like S3
  if (p.kind === 'peer') return void parsePeerUri(p.uri); // the peer itself is asked by addPeerLocation
  if (p.kind !== 'local') throw new FsError('ENOTSUP', `${p.kind} locations are not supported yet`);
  let st;
  try {
    st = statSync(p.uri);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') throw new FsError('EACCES', `${p.uri} cannot be reached: permission denied`);
    throw new FsError('ENOENT', `${p.uri} does not exist (create it, or plug in the drive that holds it)`);
  }
  if (!st.isDirectory()) throw new FsError('ENOTDIR', `${p.uri} is not a directory`);
}

/**
 * The opened home, as far as providers need it (app/home.ts `Home` is one): a Drive provider
 * keeps its tokens and listing snapshots in `dir`; a peer provider reads the keys from `dir`,
 * the owner's address from `db` and the replicated tree from `entries`. Each provider gets only
 * its part, as a context object, and never looks for the home itself.
 */
export interface ProviderContext {
  readonly dir: string;
  readonly db: Db;
  readonly entries: EntryStore;
}

/** A location as openProvider needs it. */
export type OpenableLocation = { id?: number; kind: LocationKind; uri: string; readonly: boolean; ownerNode?: string };

/** The provider behind a location. Throws ENOTSUP for kinds this build cannot open. */
export function openProvider(loc: OpenableLocation, ctx: ProviderContext): Provider {
  switch (loc.kind) {
    case 'local':
      return new LocalProvider(loc.uri, loc.readonly);
    // The cloud SDKs load on first use: they are most of the CLI's start-up time (0.3 s of
    // `vdfs status`), and most commands on most homes never open one.
    case 's3': {
      const { S3Provider } = require('../providers/s3/s3-provider') as typeof import('../providers/s3/s3-provider');
      return new S3Provider(parseS3Uri(loc.uri), { readonly: loc.readonly });
    }
    case 'gdrive': {
      const { GdriveProvider } = require('../providers/gdrive/gdrive-provider') as typeof import('../providers/gdrive/gdrive-provider');
      return new GdriveProvider(parseGdriveUri(loc.uri), { readonly: loc.readonly, homeDir: ctx.dir });
    }
    case 'peer': {
      const peers = new PeerStore(ctx.db);
      return new PeerProvider(loc, { keys: () => readKeys(ctx.dir), peerAddresses: (id) => peers.addressesOf(id), tree: ctx.entries });
    }
    default:
      throw new FsError('ENOTSUP', `${loc.kind} locations are not supported yet`);
  }
}

/**
 * Where reading each kind stands before anything is measured, cheapest first: this machine's
 * disks (LOCAL_DISK_RANK, never outranked by a measurement), then LAN peers, then cloud stores.
 */
const READ_RANK: Record<LocationKind, number> = { local: LOCAL_DISK_RANK, peer: 1, s3: 2, gdrive: 3 };

/** A location's read rank (READ_RANK; an unknown kind last). Never throws. */
export function readRankOf(loc: { kind: string }): number {
  return Object.prototype.hasOwnProperty.call(READ_RANK, loc.kind) ? READ_RANK[loc.kind as LocationKind] : 9;
}

/** openProvider bound to one home, with the read rank of each kind: what the VFS's ProviderPool is given. */
export function providerOpener(ctx: ProviderContext): ((loc: OpenableLocation) => Provider) & { readRank(loc: { kind: string }): number } {
  return Object.assign((loc: OpenableLocation) => openProvider(loc, ctx), { readRank: readRankOf });
}
