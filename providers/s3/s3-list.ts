import { ListObjectsV2Command, type ListObjectsV2CommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { checkName } from '../../core/paths';
import type { ProviderEntry } from '../../core/provider';
import { dirEntry, fileEntry } from './s3-entries';

/** One object of a recursive listing. */
export interface S3Object {
  key: string;
  size: number;
  etag: string | undefined;
  lastModified: Date | undefined;
}

/**
 * What a listing needs of the provider (S3Provider is one): the client, the bucket, the key of a
 * directory, and the provider's retrying call, which throws FsError.
 */
export interface S3Lister {
  readonly client: S3Client;
  readonly loc: { bucket: string };
  dirPrefix(rel: string): string;
  call<T>(what: string, fn: (signal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

function validName(name: string): boolean {
  try {
    checkName(name);
    return true;
  } catch {
    return false;
  }
}

/** Every page of a listing (ListObjectsV2 returns at most 1,000 keys per call). */
export async function* listPages(p: S3Lister, prefix: string, delimiter: string | undefined, what: string): AsyncGenerator<ListObjectsV2CommandOutput> {
  let token: string | undefined;
  do {
    const page: ListObjectsV2CommandOutput = await p.call(what, () =>
      p.client.send(new ListObjectsV2Command({ Bucket: p.loc.bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token })),
    );
    yield page;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/**
 * The children of a directory. The directory's own `dir/` marker is not a child; a name that is
 * both an object and a prefix shows as the directory (what `stat` says too); names a POSIX
 * filesystem cannot hold ('', '.', '..', over 255 bytes: keys like `a//b`) are skipped.
 * Throws FsError (EHOSTDOWN, EACCES, EIO).
 */
export async function listDir(p: S3Lister, rel: string, what: string): Promise<ProviderEntry[]> {
  const prefix = p.dirPrefix(rel);
  const dirs = new Map<string, ProviderEntry>();
  const files: ProviderEntry[] = [];
  for await (const page of listPages(p, prefix, '/', what)) {
    for (const cp of page.CommonPrefixes ?? []) {
      const name = (cp.Prefix ?? '').slice(prefix.length, -1);
      if (validName(name)) dirs.set(name, dirEntry(name));
    }
    for (const o of page.Contents ?? []) {
      const name = (o.Key ?? '').slice(prefix.length);
      if (name === '' || !validName(name)) continue;
      files.push(fileEntry(name, o.Size ?? 0, o.ETag, o.LastModified));
    }
  }
  return [...dirs.values(), ...files.filter((f) => !dirs.has(f.name))];
}

/** Every object under a key prefix, markers included. Throws FsError. */
export async function listAll(p: S3Lister, prefix: string, what: string): Promise<S3Object[]> {
  const out: S3Object[] = [];
  for await (const page of listPages(p, prefix, undefined, what))
    for (const o of page.Contents ?? []) out.push({ key: o.Key ?? '', size: o.Size ?? 0, etag: o.ETag, lastModified: o.LastModified });
  return out;
}
