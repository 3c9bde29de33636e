import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FOLDER } from './gdrive-api';
import type { DriveTree } from './gdrive-node';
import { tokenFile } from './gdrive-tokens';
import { walkTree, type WalkedObject } from './gdrive-walk';

/** The last whole-tree listing and the changes.list token taken just before it. */
interface Snapshot {
  uri: string;
  token: string;
  objects: (Omit<WalkedObject, 'lastModified'> & { lastModified?: number })[];
}

function stateFile(homeDir: string | undefined, uri: string): string {
  return join(dirname(tokenFile(homeDir)), `state-${createHash('sha256').update(uri).digest('hex').slice(0, 16)}.json`);
}

function load(homeDir: string | undefined, uri: string): Snapshot | undefined {
  try {
    const s = JSON.parse(readFileSync(stateFile(homeDir, uri), 'utf8')) as Snapshot;
    return s.uri === uri ? s : undefined;
  } catch {
    return undefined;
  }
}

function save(homeDir: string | undefined, s: Snapshot): void {
  const f = stateFile(homeDir, s.uri);
  mkdirSync(dirname(f), { recursive: true, mode: 0o700 });
  writeFileSync(`${f}.tmp`, JSON.stringify(s), { mode: 0o600 });
  renameSync(`${f}.tmp`, f);
}

const revive = (o: Snapshot['objects'][number]): WalkedObject => ({ ...o, lastModified: o.lastModified === undefined ? undefined : new Date(o.lastModified) });
const freeze = (o: WalkedObject): Snapshot['objects'][number] => ({ ...o, lastModified: o.lastModified?.getTime() });

/**
 * The whole tree, incrementally: the last listing is kept in the home with the changes.list
 * token taken before it. Next time, changes.list says what moved since: nothing → the
 * snapshot is the answer (one request); only files changed → just their folders (old and new
 * parents) are listed again; a folder changed, or no snapshot → a full walk. The token is
 * taken before listing, so a change made during the walk is seen again next time, never lost.
 * The snapshot is the provider's own view, so a scan that fails after it was saved loses
 * nothing: the next scan compares the same snapshot with the index. Throws FsError.
 */
export async function* walkIncremental(p: DriveTree, homeDir: string | undefined, uri: string, what: string): AsyncGenerator<WalkedObject> {
  const snap = load(homeDir, uri);
  const token = await p.api.startPageToken(what);
  let objects: WalkedObject[] | undefined;
  if (snap) {
    const { changes } = await p.api.changesSince(snap.token, what);
    const old = snap.objects.map(revive);
    const folders = new Map<string, string>([[p.loc.folderId, '']]);
    for (const o of old) if (o.rel.endsWith('/') && o.id) folders.set(o.id, o.rel.slice(0, -1));
    const parentOf = new Map(old.filter((o) => o.id).map((o) => [o.id!, o.parent]));
    const affected = new Set<string>();
    let full = false;
    for (const c of changes) {
      const id = c.fileId ?? c.file?.id ?? '';
      if (folders.has(id) || c.file?.mimeType === FOLDER) {
        full = true;
        break;
      }
      // A shortcut's entry carries its target's id, so a target's change re-lists the shortcut's folder.
      const before = parentOf.get(id);
      if (before && folders.has(before)) affected.add(before);
      for (const par of c.file?.parents ?? []) if (folders.has(par)) affected.add(par);
    }
    if (!full) {
      const relisted: WalkedObject[] = [];
      if (affected.size > 0)
        for await (const o of walkTree(
          p,
          what,
          [...affected].map((id) => ({ id, rel: folders.get(id)! })),
          false,
        ))
          relisted.push(o);
      objects = [...old.filter((o) => !o.parent || !affected.has(o.parent)), ...relisted];
    }
  }
  if (!objects) {
    objects = [];
    for await (const o of walkTree(p, what)) objects.push(o);
  }
  save(homeDir, { uri, token, objects: objects.map(freeze) });
  yield* objects;
}
