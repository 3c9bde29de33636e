import type { BlobStore } from '../../index/blobs';
import type { Db } from '../../index/db';
import type { EntryStore } from '../../index/entries';
import type { LocationStore } from '../../index/locations';
import type { HiddenRels } from '../../index/state-paths';

/** The settings the VFS reads (a subset of the home's config.json). */
export interface VfsConfig {
  readonly name: string;
  readonly blockSize: number;
  readonly 'cache.pinnedMax': number;
  /** The block cache's limit: what is fetched ahead stays a small part of it. Absent: the defaults. */
  readonly 'cache.maxSize'?: number;
  readonly 'resolver.cacheSize': number;
  readonly 'upload.delay': number;
}

/**
 * What the VFS needs of an opened home: the index and its stores, the state folders and the
 * settings above. The application's `Home` (app/home.ts) is one; the VFS never opens a home
 * itself. Store methods throw as their own docs say (FsError, or SqliteError).
 */
export interface VfsHome {
  readonly dir: string;
  readonly db: Db;
  readonly entries: EntryStore;
  readonly locations: LocationStore;
  readonly blobs: BlobStore;
  readonly config: VfsConfig;
  readonly cacheDir: string;
  readonly stagingDir: string;
  /** The vdfs state folders inside each location, never shown in the namespace. */
  readonly hidden: HiddenRels;
}
