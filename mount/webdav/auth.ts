import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, keylen: number, opts: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/** A user allowed in with Basic auth; `scrypt` is the output of hashPassword(). Plain data: nothing here throws. */
export interface WebdavUser {
  name: string;
  scrypt: string;
}

const N = 16384;
const R = 8;
const P = 1;
const KEYLEN = 32;

/** `scrypt$N$r$p$<salt base64>$<hash base64>`: the password hash format of `users[].scrypt`. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, KEYLEN, { N, r: R, p: P, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Checks a password against a hashPassword() string; false for a malformed hash (never throws). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((x) => Number.isSafeInteger(x) && x > 0) || n > 1 << 20) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const want = Buffer.from(parts[5]!, 'base64');
  if (want.length === 0) return false;
  try {
    const got = await scrypt(password, salt, want.length, { N: n, r, p, maxmem: 256 * 1024 * 1024 });
    return timingSafeEqual(got, want);
  } catch {
    return false;
  }
}

/**
 * Basic authentication with a small cache of accepted credentials, keyed by a SHA-256
 * of the header, because scrypt costs ~50 ms and Finder sends dozens of requests per
 * folder it shows.
 */
export class BasicAuth {
  private readonly ok = new Map<string, number>();

  constructor(private readonly users: WebdavUser[]) {}

  /** The user name, or null when the Authorization header is missing or wrong. */
  async check(header: string | undefined): Promise<string | null> {
    if (!header || !/^basic /i.test(header)) return null;
    const key = createHash('sha256').update(header).digest('hex');
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return null;
    const name = decoded.slice(0, colon);
    const cached = this.ok.get(key);
    if (cached !== undefined && cached > Date.now()) return name;
    const user = this.users.find((u) => u.name === name);
    if (!user || !(await verifyPassword(decoded.slice(colon + 1), user.scrypt))) return null;
    if (this.ok.size > 1000) this.ok.clear();
    this.ok.set(key, Date.now() + 5 * 60_000);
    return name;
  }
}
