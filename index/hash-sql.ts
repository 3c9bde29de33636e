/**
 * Content hashes are stored as 32-byte BLOBs (migration 7: 85 bytes less per entry than 64 hex
 * characters, in the row and in `entries_hash`) and are lowercase hex everywhere outside index/.
 * These SQL fragments convert at the statement, so rows keep their hex `hash` field.
 */

/** The hex form of a hash column (`hex` of NULL is '': back to NULL). */
export function hexOf(col: string): string {
  return `nullif(lower(hex(${col})), '')`;
}

/**
 * The stored form of a bound hex hash (`?`, `@hash`). unhex() of something that is not hex is
 * NULL: such a "hash" is stored as unknown, and matches nothing in a WHERE.
 */
export function binOf(param: string): string {
  return `unhex(${param})`;
}
