import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';

/**
 * vdfs's own state folders (the home, a separately configured cache.dir, staging/) must never
 * appear inside the namespace, even when a location contains them (the quick start shares
 * $HOME, and the home lives under it): the index, the node key and the Drive token would be
 * readable and writable by every client and peer. This module says which relative paths of
 * a location are such folders; the scanner, the watcher, the VFS resolver and the peer server
 * all hide them (and everything below them).
 */

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p); // not created yet: as configured
  }
}

/**
 * The relative paths (inside the location root `root`) of the state folders that lie inside
 * it, compared after resolving symlinks on both sides. Never '' (a location that is itself a
 * state folder is refused when it is added, not hidden whole). Throws nothing.
 */
export function stateRelsIn(root: string, statePaths: readonly string[]): string[] {
  if (!isAbsolute(root)) return []; // a cloud or peer location's URI: no local folder can be inside it
  const r = real(root);
  const out: string[] = [];
  for (const p of statePaths) {
    const rel = relative(r, real(p));
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || rel.startsWith(sep)) continue;
    out.push(rel.split(sep).join('/'));
  }
  return out;
}

/** Is `rel` one of `hidden`, or below one of them? */
export function isHiddenRel(rel: string, hidden: readonly string[]): boolean {
  for (const h of hidden) if (rel === h || rel.startsWith(`${h}/`)) return true;
  return false;
}

/** Remembers stateRelsIn per location root (roots and state folders do not move while a process runs). */
export class HiddenRels {
  private readonly byRoot = new Map<string, string[]>();

  constructor(private readonly statePaths: readonly string[]) {}

  of(root: string): string[] {
    let r = this.byRoot.get(root);
    if (!r) this.byRoot.set(root, (r = stateRelsIn(root, this.statePaths)));
    return r;
  }

  /** Is `rel` of the location at `root` a state folder or inside one? */
  hides(root: string, rel: string): boolean {
    const h = this.of(root);
    return h.length > 0 && isHiddenRel(rel, h);
  }
}
