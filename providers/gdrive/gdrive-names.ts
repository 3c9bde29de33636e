/**
 * Drive names are not POSIX names: one folder may hold several files of the same name, and a
 * name may contain '/'. Each folder's listing is mapped to unique names like this:
 *  - '/' becomes '∕' (U+2215 DIVISION SLASH); '' '.' '..' become '_', '_.', '_..';
 *  - a Google Docs editors file gets its export extension (`Report` -> `Report.docx`);
 *  - when several children end up with one name, the one created first (then lowest id) keeps
 *    it and every other gets ` [gd-ID]` before its extension, ID being its whole Drive file id.
 * The mapping is stable (ids and creation times do not change) and reversible: the name
 * resolves to exactly one file id through the folder's listing.
 */

export interface NamedChild {
  id: string;
  name: string;
  createdTime?: string | null;
}

function clean(name: string): string {
  const n = name.replace(/\//g, '\u2215').replace(/\0/g, '');
  return n === '' || n === '.' || n === '..' ? `_${n}` : n;
}

function withSuffix(name: string, id: string): string {
  const dot = name.lastIndexOf('.');
  const tag = ` [gd-${id}]`;
  return dot > 0 ? `${name.slice(0, dot)}${tag}${name.slice(dot)}` : `${name}${tag}`;
}

/** Unique display names for one folder's children; `ext(child)` is the export extension of a Google file (else undefined). */
export function displayNames<T extends NamedChild>(children: T[], ext: (c: T) => string | undefined): Map<string, T> {
  const groups = new Map<string, T[]>();
  for (const c of children) {
    const e = ext(c);
    const base = clean(c.name) + (e ? `.${e}` : '');
    const g = groups.get(base);
    if (g) g.push(c);
    else groups.set(base, [c]);
  }
  const out = new Map<string, T>();
  for (const [base, g] of groups) {
    if (g.length === 1) {
      out.set(base, g[0]);
      continue;
    }
    g.sort((a, b) => (a.createdTime ?? '').localeCompare(b.createdTime ?? '') || a.id.localeCompare(b.id));
    out.set(base, g[0]);
    for (const c of g.slice(1)) out.set(withSuffix(base, c.id), c);
  }
  return out;
}
