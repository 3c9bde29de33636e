import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined | null = null;

/**
 * One full garbage collection, when the process may run one (V8's `gc`, exposed at run time
 * for a fresh context). V8 collects its old space only under allocation pressure, so after a
 * burst (a `find` over 100,000 names allocates a few hundred MB of short-lived objects) a
 * daemon that then goes idle keeps that heap resident for good; a full collection at the start
 * of the idle period gives the empty pages back. False when not available. Never throws.
 */
export function fullGc(): boolean {
  if (gc === null) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = undefined;
    }
  }
  try {
    gc?.();
  } catch {
    return false;
  }
  return gc !== undefined;
}
