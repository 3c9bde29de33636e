/** A satisfiable single range, inclusive end. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses a `Range` header for a resource of `size` bytes: the one parser of both HTTP edges
 * (WebDAV and the peer server). Returns null when there is no header, 'invalid' when it is not
 * one well-formed `bytes=` range (another unit, several ranges, an end before the start, a
 * number past 2^53), 'unsatisfiable' for a valid range that lies past the end (416), else the
 * range with its end clamped to the last byte. Never throws: each edge decides what 'invalid'
 * means (WebDAV ignores the header and sends the whole entity, as RFC 9110 allows; the peer
 * edge, whose only client is vdfs, refuses it with EINVAL rather than stream a whole blob).
 */
export function parseRangeHeader(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | 'invalid' | null {
  if (header === undefined || header === '') return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return 'invalid';
  const [, a, b] = m as unknown as [string, string, string];
  if (a === '' && b === '') return 'invalid';
  if (a === '') {
    const n = Number(b);
    if (!Number.isSafeInteger(n)) return 'invalid';
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  let end = b === '' ? size - 1 : Number(b);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return 'invalid';
  if (start >= size) return 'unsatisfiable';
  if (end < start) return 'invalid';
  if (end >= size) end = size - 1;
  return { start, end };
}

/**
 * The WebDAV reading of parseRangeHeader: an invalid header is ignored (null: the whole
 * entity, which RFC 9110 allows). Never throws.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  const r = parseRangeHeader(header, size);
  return r === 'invalid' ? null : r;
}
