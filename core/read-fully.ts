import type { FileHandle } from 'node:fs/promises';

/**
 * Fills `buf` from `offset` of the file, looping over short reads; returns the bytes read,
 * fewer than `buf.length` only at end of file. Throws what FileHandle.read throws.
 */
export async function readFullyInto(fh: FileHandle, buf: Buffer, offset: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * Up to `length` bytes at `offset`, looping over short reads; shorter only at end of file.
 * Throws what FileHandle.read throws.
 */
export async function readFully(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  if (length === 0) return Buffer.alloc(0);
  const buf = Buffer.allocUnsafe(length);
  const got = await readFullyInto(fh, buf, offset);
  return got === length ? buf : buf.subarray(0, got);
}
