import ignore, { type Ignore } from 'ignore';

/** OS junk that is never indexed unless a location's rules say otherwise ('!name'). */
export const DEFAULT_IGNORES = ['.DS_Store', 'Thumbs.db', '._*', '.Trash-*', 'lost+found', '.vdfs-tmp-*', '*.vdfs-tmp-*'];

/** gitignore-style rules of one location. `rel` is relative to the location root. */
export class IgnoreRules {
  private readonly ig: Ignore;

  constructor(extra: readonly string[] = []) {
    this.ig = ignore().add(DEFAULT_IGNORES).add([...extra]);
  }

  ignores(rel: string, isDir: boolean): boolean {
    if (rel === '') return false;
    return this.ig.ignores(isDir ? `${rel}/` : rel);
  }
}
