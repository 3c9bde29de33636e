import { Home, resolveHomeDir } from '../../app/home';

/** Options every command sees (commander's globals). */
export interface GlobalOpts {
  home?: string;
  logLevel?: string;
}

let current: Home | undefined;

/** Opens the home named by --home / VDFS_HOME / the default. Throws ENOENT when not initialised. */
export function openHome(g: GlobalOpts): Home {
  current ??= Home.open(resolveHomeDir(g.home));
  return current;
}

export function closeHome(): void {
  current?.close();
  current = undefined;
}
