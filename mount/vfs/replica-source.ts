/** One place the content can be read from. `read` throws FsError (EHOSTDOWN when unreachable). */
export interface ReplicaSource {
  label: string;
  /** The location it is read from (to find the block list that location's owner sent). */
  locationId?: number;
  /** Its size as indexed there (defaults to the blob's). */
  size?: number;
  read(offset: number, length: number): Promise<Buffer>;
}
