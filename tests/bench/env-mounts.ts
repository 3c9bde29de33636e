import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export function isMounted(mountpoint: string): boolean {
  const target = resolve(mountpoint);
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === target);
}
