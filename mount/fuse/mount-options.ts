import type { Logger } from 'pino';
import type { FuseServer } from './native-server';

export type FuseBackend = 'native' | 'compat';

export interface FuseMountOptions {
  allowOther?: boolean;
  /** Seconds the kernel may cache attributes (default 10; changes the index learns of are invalidated sooner). */
  attrTimeout?: number;
  /** Seconds the kernel may cache names it looked up (default 10). */
  entryTimeout?: number;
  /**
   * Native backend: seconds the kernel may remember that a name does not exist (default 10; a
   * name the index gets is invalidated sooner). The compat backend, which cannot invalidate, keeps 1.
   */
  negativeTimeout?: number;
  /** native: the vdfs addon (default when it loads); compat: fuse-native (libfuse 2). */
  backend?: FuseBackend;
  /** Native backend: kernel passthrough for read-only opens of local files when possible (default false: see docs/fuse.md). */
  passthrough?: boolean;
  /** Native backend: FUSE over io_uring, a queue per CPU, when the kernel offers it (default true; see docs/fuse.md). */
  uring?: boolean;
  /** Native backend: FUSE nodes kept before the kernel is asked to drop old names (config `fuse.maxNodes`). */
  maxNodes?: number;
  /** Reader threads of the native backend. */
  threads?: number;
  log: Logger;
}

export interface FuseMount {
  mountpoint: string;
  backend: FuseBackend;
  /** Resolves when the mount went away without unmount() (removed from outside). */
  closed: Promise<void>;
  /** The native backend's request server (node table, kernel invalidations). */
  server?: FuseServer;
  /** Unmounts; never throws. */
  unmount(): Promise<void>;
}
