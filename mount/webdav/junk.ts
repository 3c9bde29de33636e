/**
 * macOS Finder noise: AppleDouble `._name` companions and `.DS_Store` files. Finder asks
 * for them for every file it shows and writes them on every copy. We never store them
 * (PUT answers 201/204 and discards the body, so Finder copies do not fail with -36) and
 * answer PROPFIND/GET/HEAD with 404 from memory, without touching the index.
 */
export function isFinderJunk(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return name.startsWith('._') || name === '.DS_Store';
}

/** Prefix of the temporary names PUT streams into before renaming over the target. */
export const PUT_TEMP_PREFIX = '.vdfs-put-';

/** Names hidden from listings: in-flight uploads. */
export function isHiddenName(name: string): boolean {
  return name.startsWith(PUT_TEMP_PREFIX);
}
