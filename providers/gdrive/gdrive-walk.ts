import { joinRel } from '../../core/paths';
import type { DriveTree, Node } from './gdrive-node';

/** One entry of a whole-tree listing, relative to the location; a folder ends with '/'. */
export interface WalkedObject {
  rel: string;
  size: number;
  version: string;
  lastModified?: Date;
  /** Drive ids of the entry and of the folder it was listed in (for incremental rescans). */
  id?: string;
  parent?: string;
}

/** Folders listed per files.list query: `'a' in parents or 'b' in parents ...` stays well under URL limits. */
const BATCH = 40;
const CONCURRENCY = 4;

/**
 * The whole tree under the location, breadth first: the children of up to 40 folders are
 * fetched in one paged query (1,000 per page), 4 queries at a time, so a tree costs about
 * (folders / 40 + files / 1000) requests rather than one per folder. Names are mapped per
 * folder as in listings; a folder reached twice (a shortcut to an ancestor) is not entered
 * again. Google files are exported to learn their size. Throws FsError.
 */
export async function* walkTree(
  p: DriveTree,
  what: string,
  start: { id: string; rel: string }[] = [{ id: p.loc.folderId, rel: '' }],
  recurse = true,
): AsyncGenerator<WalkedObject> {
  await p.resolve('', what); // reachability, and that the id exists
  const seen = new Set<string>([p.loc.folderId, ...start.map((s) => s.id)]);
  let level = start;
  while (level.length > 0) {
    const batches: { id: string; rel: string }[][] = [];
    for (let i = 0; i < level.length; i += BATCH) batches.push(level.slice(i, i + BATCH));
    const next: { id: string; rel: string }[] = [];
    const out: WalkedObject[][] = [];
    let b = 0;
    const worker = async () => {
      while (b < batches.length) {
        const batch = batches[b++];
        const files = await p.api.listChildren(
          batch.map((d) => d.id),
          what,
        );
        const byParent = new Map<string, Node[]>(batch.map((d) => [d.id, []]));
        for (const f of files) {
          const n = await p.toNode(f, what);
          if (!n) continue;
          for (const parent of f.parents ?? []) byParent.get(parent)?.push(n);
        }
        const objs: WalkedObject[] = [];
        for (const d of batch) {
          for (const [name, n] of p.named(byParent.get(d.id)!)) {
            const rel = joinRel(d.rel, name);
            const e = await p.entry(n, what);
            const lastModified = new Date(e.mtimeSec * 1000 + e.mtimeNsec / 1e6);
            if (n.kind === 'dir') {
              objs.push({ rel: `${rel}/`, size: 0, version: 'dir', lastModified, id: n.id, parent: d.id });
              if (recurse && !seen.has(n.id)) {
                seen.add(n.id);
                next.push({ id: n.id, rel });
              }
            } else objs.push({ rel, size: e.size, version: e.version, lastModified, id: n.id, parent: d.id });
          }
        }
        out.push(objs);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, batches.length) }, worker));
    for (const objs of out) yield* objs;
    level = next;
  }
}
