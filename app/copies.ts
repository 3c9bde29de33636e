import { fileCopies } from '../index/subtree';
import type { Location } from '../index/locations';
import type { Home } from './home';
import { virtualPath } from '../mount/vfs/namespace';

/** A location as the copies report shows it. */
export interface CopiesLocation {
  name: string;
  kind: string;
  online: boolean;
  /** ISO time last reachable (now when online), null when never recorded. */
  lastSeen: string | null;
}

/** Files under the minimum that are held by exactly the same set of locations. */
export interface CopiesGroup {
  locations: CopiesLocation[];
  files: number;
  bytes: number;
  /** Virtual paths of those files (sorted); empty when the report was made without paths. */
  paths: string[];
}

/** The `vdfs copies --json` document. */
export interface CopiesReport {
  min: number;
  /** The virtual path the report covers ('/' for everything). */
  scope: string;
  /** Non-empty files in scope. */
  files: number;
  /** Files by how many distinct locations hold their content. */
  histogram: { '1': number; '2': number; '3+': number };
  under: { files: number; bytes: number };
  groups: CopiesGroup[];
}

function locationJson(l: Location, now: string): CopiesLocation {
  return { name: l.name, kind: l.kind, online: l.online, lastSeen: l.online ? now : l.lastSeen !== null ? new Date(l.lastSeen).toISOString() : null };
}

/**
 * Counts the distinct locations holding each non-empty file's content (the block cache and
 * pins do not count: both are copies on this device that vdfs may drop) and groups the files
 * under `copies.min` by the locations that hold them. `scope` limits the files looked at
 * (their replicas anywhere still count). Streams the index: without `paths` its memory does
 * not grow with the number of files (`vdfs status` runs it on every call). Throws only
 * SQLite errors.
 */
export function copiesReport(home: Home, opts: { scope?: { entryId: number; vpath: string }; paths?: boolean; min?: number } = {}): CopiesReport {
  const min = opts.min ?? home.config['copies.min'];
  const locs = new Map(home.locations.list().map((l) => [l.id, l]));
  const now = new Date().toISOString();
  const histogram = { '1': 0, '2': 0, '3+': 0 };
  const groups = new Map<string, { ids: number[]; files: number; bytes: number; fileIds: { id: number; locationId: number }[] }>();
  let files = 0;
  for (const f of fileCopies(home.db, opts.scope?.entryId)) {
    files++;
    const n = f.holders.length;
    histogram[n >= 3 ? '3+' : n === 2 ? '2' : '1']++;
    if (n >= min) continue;
    const key = f.holders.join(',');
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ids: f.holders, files: 0, bytes: 0, fileIds: [] }));
    g.files++;
    g.bytes += f.size;
    if (opts.paths !== false) g.fileIds.push({ id: f.id, locationId: f.locationId });
  }
  const out: CopiesGroup[] = [...groups.values()].map((g) => ({
    locations: g.ids
      .map((id) => locs.get(id))
      .filter((l): l is Location => !!l)
      .map((l) => locationJson(l, now)),
    files: g.files,
    bytes: g.bytes,
    paths: g.fileIds.map((f) => virtualPath(locs.get(f.locationId)?.name ?? '?', home.entries.pathOf(f.id))).sort(),
  }));
  out.sort(
    (a, b) =>
      b.files - a.files ||
      a.locations
        .map((l) => l.name)
        .join()
        .localeCompare(b.locations.map((l) => l.name).join()),
  );
  return {
    min,
    scope: opts.scope?.vpath ?? '/',
    files,
    histogram,
    under: { files: out.reduce((s, g) => s + g.files, 0), bytes: out.reduce((s, g) => s + g.bytes, 0) },
    groups: out,
  };
}

/** The one line `vdfs status` prints. */
export function copiesSummaryLine(r: CopiesReport, formatSize: (n: number) => string): string {
  const h = r.histogram;
  const head =
    r.under.files === 0
      ? `all ${r.files} files have at least ${r.min} copies`
      : `${r.under.files} of ${r.files} files (${formatSize(r.under.bytes)}) have fewer than ${r.min} copies (see vdfs copies)`;
  return `copies: ${head}; 1 copy: ${h['1']}, 2: ${h['2']}, 3+: ${h['3+']}`;
}
