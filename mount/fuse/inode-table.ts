import { FsError } from '../../providers/fs-error';
import type { Attr } from '../vfs/types';

/** One name the kernel holds a reference to. */
export interface FuseNode {
  readonly id: number;
  name: string;
  /** null for the root, and for a node whose name was unlinked while the kernel still holds it. */
  parent: FuseNode | null;
  children: Map<string, FuseNode> | null;
  /** Kernel references (LOOKUP, CREATE, READDIRPLUS... each add one; FORGET takes them back). */
  lookups: number;
  /** Validator seen at the last open: the kernel may keep its page cache when it did not change. */
  openEtag?: string;
  /** The name was unlinked while the kernel still holds the node (an open file): fstat answers from `last`. */
  unlinked?: boolean;
  last?: Attr;
  /**
   * Kernel io modes of the open files (see docs/fuse.md, Passthrough): the kernel refuses (EIO)
   * a passthrough open while a cached one is open and vice versa, and wants one backing file
   * per inode, so concurrent passthrough opens share `backing`.
   */
  cachedOpens?: number;
  backing?: { id: number; opens: number };
}

export const ROOT_ID = 1;

/**
 * Node ids <-> virtual paths for the kernel FUSE protocol. A node lives while the kernel holds
 * lookups on it or on a descendant, so memory is bounded by the kernel's own inode cache
 * (FORGET/BATCH_FORGET after `echo 2 > /proc/sys/vm/drop_caches` empty it). Ids are never
 * reused while the daemon runs, so the generation number is constant.
 */
export class InodeTable {
  readonly generation = 1;
  readonly root: FuseNode = { id: ROOT_ID, name: '', parent: null, children: null, lookups: 1 };
  private readonly byId = new Map<number, FuseNode>([[ROOT_ID, this.root]]);
  private nextId = ROOT_ID + 1;

  get size(): number {
    return this.byId.size;
  }

  nodes(): IterableIterator<FuseNode> {
    return this.byId.values();
  }

  /** Throws ESTALE for an id the kernel should no longer have. */
  get(id: number): FuseNode {
    const n = this.byId.get(id);
    if (!n) throw new FsError('ESTALE', `node ${id} is not known (forgotten)`);
    return n;
  }

  /** Virtual path of a node; a node unlinked since keeps the path it had. */
  pathOf(n: FuseNode): string {
    if (n === this.root) return '/';
    const parts: string[] = [];
    for (let c: FuseNode | null = n; c && c !== this.root; c = c.parent) parts.push(c.name);
    return '/' + parts.reverse().join('/');
  }

  childPath(parent: FuseNode, name: string): string {
    const p = this.pathOf(parent);
    return p === '/' ? `/${name}` : `${p}/${name}`;
  }

  peek(parent: FuseNode, name: string): FuseNode | undefined {
    return parent.children?.get(name);
  }

  /** The child node (created when new) with one more kernel reference. */
  lookup(parent: FuseNode, name: string): FuseNode {
    let n = parent.children?.get(name);
    if (!n) {
      n = { id: this.nextId++, name, parent, children: null, lookups: 0 };
      (parent.children ??= new Map()).set(name, n);
      this.byId.set(n.id, n);
    }
    n.lookups++;
    return n;
  }

  /** The kernel dropped `count` references. */
  forget(id: number, count: number): void {
    const n = this.byId.get(id);
    if (!n || n === this.root) return;
    n.lookups = Math.max(0, n.lookups - count);
    this.prune(n);
  }

  /** The name is gone (unlink, rmdir, replaced by a rename): the node stays until forgotten. */
  remove(parent: FuseNode, name: string): void {
    const n = parent.children?.get(name);
    if (!n) return;
    n.unlinked = true;
    this.detach(n);
    this.prune(n);
  }

  /** Moves a name; a node that was at the target is detached. */
  rename(parent: FuseNode, name: string, newParent: FuseNode, newName: string): void {
    const n = parent.children?.get(name);
    this.remove(newParent, newName);
    if (!n) return;
    this.detach(n);
    n.name = newName;
    n.parent = newParent;
    (newParent.children ??= new Map()).set(newName, n);
  }

  /** Swaps two names (RENAME_EXCHANGE). */
  exchange(parent: FuseNode, name: string, newParent: FuseNode, newName: string): void {
    const a = parent.children?.get(name);
    const b = newParent.children?.get(newName);
    if (a) this.detach(a);
    if (b) this.detach(b);
    if (a) { a.name = newName; a.parent = newParent; (newParent.children ??= new Map()).set(newName, a); }
    if (b) { b.name = name; b.parent = parent; (parent.children ??= new Map()).set(name, b); }
  }

  private detach(n: FuseNode): void {
    if (n.parent?.children?.get(n.name) === n) {
      n.parent.children.delete(n.name);
      const p = n.parent;
      if (p.children && p.children.size === 0) p.children = null;
    }
  }

  /** Drops nodes nobody references, then their parents when those became unreferenced too. */
  private prune(n: FuseNode): void {
    let c: FuseNode | null = n;
    while (c && c !== this.root && c.lookups === 0 && !c.children) {
      const parent: FuseNode | null = c.parent;
      this.byId.delete(c.id);
      this.detach(c);
      c.parent = null;
      c = parent;
    }
  }
}
