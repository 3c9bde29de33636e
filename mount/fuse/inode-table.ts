import { FsError } from '../../core/fs-error';
import type { Attr } from '../vfs/types';
import { NegativeNames } from './negative-names';

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
  /** `writable`: opened for reading and writing, so writers may share it too. */
  backing?: { id: number; opens: number; writable: boolean; file: string };
  /** A directory's last listing (READDIR at offset 0): when, and the index change count then (see OPENDIR). */
  listed?: { at: number; seq: number };
  /** The other names of a hard-linked file (the kernel has one inode, so one node, for all of them). */
  aliases?: { parent: FuseNode; name: string }[];
  /** The attribute inode number of a hard-linked file: lookups of its other names find this node. */
  linkedIno?: number;
  /** The file type the kernel was told: it holds an inode of that type for this id (see lookup). */
  type?: Attr['type'];
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
  /** Hard-linked files by attribute inode number. */
  private readonly byLinkedIno = new Map<number, FuseNode>();
  private nextId = ROOT_ID + 1;
  /** Names the kernel was told do not exist: a name it now gets an entry for is no longer one. */
  readonly negatives = new NegativeNames();

  get size(): number {
    return this.byId.size;
  }

  nodes(): IterableIterator<FuseNode> {
    return this.byId.values();
  }

  /** The node of `id`, undefined when the kernel no longer has it. */
  find(id: number): FuseNode | undefined {
    return this.byId.get(id);
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

  /**
   * The node at a canonical virtual path ('/loc/a/b') and the node of its folder, as far as the
   * kernel holds them (pathOf's inverse); `parent` undefined when it holds no node of the folder.
   */
  atPath(vpath: string): { parent?: FuseNode; node?: FuseNode } {
    const names = vpath.split('/').slice(1);
    if (names.length === 0 || names[0] === '') return {};
    let parent: FuseNode | undefined = this.root;
    for (let i = 0; i < names.length - 1 && parent; i++) parent = this.peek(parent, names[i]);
    return { parent, node: parent && this.peek(parent, names[names.length - 1]) };
  }

  /** Every node below `n` the table holds, depth first. */
  *below(n: FuseNode): Generator<FuseNode> {
    for (const child of n.children?.values() ?? []) {
      yield child;
      yield* this.below(child);
    }
  }

  peek(parent: FuseNode, name: string): FuseNode | undefined {
    return parent.children?.get(name);
  }

  /**
   * The child node (created when new, or when the name's object is of another `type` now) with one
   * more kernel reference. `linkedIno` (the attribute
   * inode of a file with several links): another name of a node already known becomes one more
   * name of that node, as the kernel has one inode for all of them.
   */
  lookup(parent: FuseNode, name: string, type: Attr['type'], linkedIno?: number): FuseNode {
    if (this.negatives.size > 0) this.negatives.forget(parent.id, name);
    let n = parent.children?.get(name);
    // Another object took the name (a folder replaced by a file or a link on the disk): it gets
    // a new id. The kernel marks an inode whose id comes back with another type bad (EIO).
    if (n && n.type !== undefined && n.type !== type) {
      this.remove(parent, name);
      n = parent.children?.get(name);
    }
    if (!n && linkedIno !== undefined) {
      n = this.byLinkedIno.get(linkedIno);
      if (n) {
        (n.aliases ??= []).push({ parent, name });
        (parent.children ??= new Map()).set(name, n);
      }
    }
    if (!n) {
      n = { id: this.nextId++, name, parent, children: null, lookups: 0 };
      (parent.children ??= new Map()).set(name, n);
      this.byId.set(n.id, n);
    }
    if (linkedIno !== undefined && n.linkedIno === undefined) {
      n.linkedIno = linkedIno;
      this.byLinkedIno.set(linkedIno, n);
    }
    n.type = type;
    n.lookups++;
    return n;
  }

  /** A node the kernel knows got a second name: its other names now find it by `ino`. */
  adoptLinked(n: FuseNode, ino: number): void {
    n.linkedIno = ino;
    this.byLinkedIno.set(ino, n);
  }

  /** Drops one name of a node with several; false when `name` is its only (primary) name. */
  private dropName(n: FuseNode, parent: FuseNode, name: string): boolean {
    if (!n.aliases?.length) return false;
    if (parent.children?.get(name) === n) {
      parent.children.delete(name);
      if (parent.children.size === 0) parent.children = null;
    }
    const i = n.aliases.findIndex((a) => a.parent === parent && a.name === name);
    if (i >= 0) n.aliases.splice(i, 1);
    else {
      // The primary name goes: the first alias becomes the path of the node.
      const next = n.aliases.shift()!;
      n.parent = next.parent;
      n.name = next.name;
    }
    return true;
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
    if (this.dropName(n, parent, name)) return;
    n.unlinked = true;
    this.detach(n);
    this.prune(n);
  }

  /** Moves a name; a node that was at the target is detached. */
  rename(parent: FuseNode, name: string, newParent: FuseNode, newName: string): void {
    const n = parent.children?.get(name);
    if (this.negatives.size > 0) this.negatives.forget(newParent.id, newName);
    if (n && newParent.children?.get(newName) === n) return; // two names of one file: rename(2) does nothing
    this.remove(newParent, newName);
    if (!n) return;
    if (this.dropName(n, parent, name)) {
      n.aliases!.push({ parent: newParent, name: newName });
      (newParent.children ??= new Map()).set(newName, n);
      return;
    }
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
    if (a) {
      a.name = newName;
      a.parent = newParent;
      (newParent.children ??= new Map()).set(newName, a);
    }
    if (b) {
      b.name = name;
      b.parent = parent;
      (parent.children ??= new Map()).set(name, b);
    }
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
      if (c.linkedIno !== undefined && this.byLinkedIno.get(c.linkedIno) === c) this.byLinkedIno.delete(c.linkedIno);
      for (const a of c.aliases ?? []) if (a.parent.children?.get(a.name) === c) a.parent.children.delete(a.name);
      c.aliases = undefined;
      this.detach(c);
      c.parent = null;
      c = parent;
    }
  }
}
