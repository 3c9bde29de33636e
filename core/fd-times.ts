import { loadNativeFuse } from './native-addon';

/** A time for utimensat/futimens: exact to the nanosecond, the current time, or left as it is. */
export type TimeSet = { sec: number; nsec: number } | 'now' | 'omit';

/** UTIME_NOW / UTIME_OMIT (Linux) as the tv_nsec of a timespec. */
const UTIME_NOW = (1 << 30) - 1;
const UTIME_OMIT = (1 << 30) - 2;

/** A TimeSet as the (tv_sec, tv_nsec) pair the addon's utimens/futimens take. */
export function timespecOf(t: TimeSet): [number, number] {
  if (t === 'now') return [0, UTIME_NOW];
  if (t === 'omit') return [0, UTIME_OMIT];
  return [t.sec, t.nsec];
}

/**
 * futimens(2) on an open descriptor through the addon, exact to the nanosecond: 0, or -errno;
 * undefined when the addon is not built (the caller then uses Node's microsecond calls).
 */
export function futimensFd(fd: number, atime: TimeSet, mtime: TimeSet): number | undefined {
  const futimens = loadNativeFuse().addon?.futimens;
  return futimens ? futimens(fd, ...timespecOf(atime), ...timespecOf(mtime)) : undefined;
}
