import type { FileHandle } from 'node:fs/promises';

/**
 * Up to `length` bytes at `offset`, looping over short reads; shorter only at end of file.
 * Throws what FileHandle.read throws.
 */
export async function readFully(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  if (length === 0) return Buffer.alloc(0);
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}
