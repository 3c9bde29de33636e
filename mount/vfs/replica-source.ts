import type { Readable } from 'node:stream';

/** One place the content can be read from. `read` throws FsError (EHOSTDOWN when unreachable). */
export interface ReplicaSource {
  label: string;
  /** The location it is read from (to find the block list that location's owner sent). */
  locationId?: number;
  /** Its size as indexed there (defaults to the blob's). */
  size?: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** Bytes [offset, offset+length) as one stream (see Provider.readRangeStream), when the source can. */
  stream?(offset: number, length: number): Promise<Readable>;
  /**
   * True when `read` checks the version the index holds (S3 ETag, Drive version), so a small
   * read may be served from it without its block's hash (docs/read-pipeline.md).
   */
  versionChecked?: boolean;
}
