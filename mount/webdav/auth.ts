import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, keylen: number, opts: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/** A user allowed in with Basic auth; `scrypt` is the output of hashPassword(). Plain data: nothing here throws. */
export interface WebdavUser {
  name: string;
  scrypt: string;
}

/**
 * OWASP's password storage cheat sheet (2023+) lists equivalent scrypt settings; of them
 * N=2^14, r=8, p=5 needs the least memory (16 MiB) per verification, which matters
 * because verifications run on the libuv pool next to file I/O (see ScryptGate).
 * Hashes stored with older parameters carry them in the string and keep verifying.
 */
export const SCRYPT_PARAMS = { N: 1 << 14, r: 8, p: 5 } as const;
const KEYLEN = 32;
const MAXMEM = 256 * 1024 * 1024;

/** Counts scrypt runs, so /~vdfs/metrics (and tests) can see that every guess costs one. */
export const scryptRuns = { total: 0 };

/** `scrypt$N$r$p$<salt base64>$<hash base64>`: the password hash format of `users[].scrypt`. */
export async function hashPassword(password: string, params: { N: number; r: number; p: number } = SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, KEYLEN, { ...params, maxmem: MAXMEM });
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Checks a password against a hashPassword() string; false for a malformed hash (never throws). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((x) => Number.isSafeInteger(x) && x > 0) || n > 1 << 20 || r * p > 64) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const want = Buffer.from(parts[5]!, 'base64');
  if (want.length === 0) return false;
  try {
    scryptRuns.total++;
    const got = await scrypt(password, salt, want.length, { N: n, r, p, maxmem: MAXMEM });
    return timingSafeEqual(got, want);
  } catch {
    return false;
  }
}

/**
 * At most `concurrency` scrypt verifications at once, and at most `maxQueued` waiting:
 * libuv's pool has 4 threads shared with every file read and write, so password guessing
 * must never occupy all of them. `run` resolves null (no scrypt spent) when the queue is full.
 */
export class ScryptGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly concurrency = 1,
    private readonly maxQueued = 16,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T | null> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxQueued) return null;
      await new Promise<void>((res) => this.waiting.push(res));
    } else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
