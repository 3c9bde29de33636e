import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { hashPassword, ScryptGate, verifyPassword, type WebdavUser } from './auth';
import { AuthThrottle, DEFAULT_THROTTLE, type ThrottleLimits } from './auth-throttle';
import { DigestAuth } from './digest';
import { HttpError } from './http-error';

/** The home's generated credential: its plain password is kept (0600) so Digest can work. Plain data. */
export interface WebdavCredential {
  user: string;
  password: string;
}

/** What one request presents (`url` as sent, for Digest's uri check). Plain data. */
export interface AuthRequest {
  authorization: string | undefined;
  method: string;
  url: string;
  address: string;
}

export const REALM = 'vdfs';
const CACHE_MS = 5 * 60_000;
const CACHE_MAX = 1000;
const MAX_PENDING_PER_ADDRESS = 2;

/**
 * Who may use the share: the home credential (Digest or Basic) and the `webdav user add`
 * users (Basic, scrypt hashes). Accepted Basic headers are cached (HMAC-keyed with a
 * per-process key, so a wrong password never matches an entry) because Finder sends
 * dozens of requests per folder. Guessing is throttled per address and overall, scrypt
 * runs one at a time, and unknown names cost one scrypt against a dummy hash like known ones.
 */
export class Authenticator {
  private readonly digest = new DigestAuth(REALM);
  private readonly cacheKey = randomBytes(32);
  private readonly ok = new Map<string, { user: string; until: number }>();
  private readonly throttle: AuthThrottle;
  private readonly gate = new ScryptGate(1, 16);
  private dummy: Promise<string> | undefined;
  private readonly pending = new Map<string, number>();

  constructor(
    private readonly users: WebdavUser[],
    private readonly credential: WebdavCredential | undefined,
    limits: ThrottleLimits = DEFAULT_THROTTLE,
  ) {
    this.throttle = new AuthThrottle(limits);
    // Ready before the first unknown name arrives, so that one costs no more than the others
    this.dummyHash().catch(() => undefined);
  }

  /** The challenges of a 401: Digest only when there is a credential to check it against. */
  challenges(stale = false): string[] {
    const basic = `Basic realm="${REALM}", charset="UTF-8"`;
    return this.credential ? [this.digest.challenge(stale), basic] : [basic];
  }

  /**
   * The user name, or throws HttpError 401 (missing or wrong credentials), 429 (this
   * address or everyone guessed too often: Retry-After says when to try again) or 503
   * (too many password checks queued).
   */
  async check(r: AuthRequest): Promise<string> {
    const h = r.authorization ?? '';
    if (/^digest\s/i.test(h) && this.credential) {
      const state = this.digest.verify(h, r.method, r.url, this.credential.user, this.credential.password);
      if (state === 'ok') return this.credential.user;
      if (state === 'bad') this.throttle.failed(r.address);
      throw this.unauthorized(state === 'stale');
    }
    if (!/^basic\s/i.test(h)) throw this.unauthorized();
    const key = createHmac('sha256', this.cacheKey).update(h).digest('base64');
    const cached = this.ok.get(key);
    if (cached && cached.until > Date.now()) return cached.user;
    const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const name = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    // The generated password is random (unguessable), so checking it costs nothing and is never throttled
    if (this.credential && name === this.credential.user && equal(password, this.credential.password)) return this.remember(key, name);
    this.assertMayTry(r.address);
    const user = this.users.find((u) => u.name === name);
    // Unknown names pay for one scrypt too, so timing does not tell which names exist
    const stored = user?.scrypt ?? (await this.dummyHash());
    // One address may have few checks waiting, so it cannot fill the queue for everyone
    const pending = this.pending.get(r.address) ?? 0;
    if (pending >= MAX_PENDING_PER_ADDRESS) throw tooMany(1000);
    this.pending.set(r.address, pending + 1);
    let good: boolean | null;
    try {
      good = await this.gate.run(async () => {
        // Failures may have arrived while this one waited its turn
        this.assertMayTry(r.address);
        return verifyPassword(password, stored);
      });
    } finally {
      const left = (this.pending.get(r.address) ?? 1) - 1;
      if (left > 0) this.pending.set(r.address, left);
      else this.pending.delete(r.address);
    }
    if (good === null) throw new HttpError(503, 'too many logins being checked: retry', undefined, undefined, { 'Retry-After': '1' });
    if (!good || !user) {
      this.throttle.failed(r.address);
      throw this.unauthorized();
    }
    this.throttle.succeeded(r.address);
    return this.remember(key, name);
  }

  /** Throws 429 while `address` (or everyone) must wait after failed logins. */
  private assertMayTry(address: string): void {
    const wait = this.throttle.waitMs(address);
    if (wait > 0) throw tooMany(wait);
  }

  private remember(key: string, user: string): string {
    if (this.ok.size >= CACHE_MAX) this.ok.clear();
    this.ok.set(key, { user, until: Date.now() + CACHE_MS });
    return user;
  }

  private dummyHash(): Promise<string> {
    this.dummy ??= hashPassword(randomBytes(16).toString('hex'));
    return this.dummy;
  }

  private unauthorized(stale = false): HttpError {
    return new HttpError(401, 'authentication required', undefined, undefined, { 'WWW-Authenticate': this.challenges(stale) });
  }
}

function tooMany(waitMs: number): HttpError {
  return new HttpError(429, 'too many failed logins: wait and retry', undefined, undefined, { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) });
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
