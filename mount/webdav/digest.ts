import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * HTTP Digest (RFC 7616, MD5 with qop=auth, and RFC 2069 without qop) for the home's
 * generated credential, whose plain password the server keeps (0600 in the home).
 * Digest is there for Windows: its WebDAV redirector refuses Basic over plain http.
 * Nonces are stateless (a time stamp signed with a per-process key) and live 5 minutes.
 */
export class DigestAuth {
  private readonly key = randomBytes(32);
  private readonly opaque = randomBytes(12).toString('hex');

  constructor(
    readonly realm: string,
    private readonly nonceLifeMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The WWW-Authenticate challenge; `stale` tells the client to retry with the new nonce without asking the user. */
  challenge(stale = false): string {
    return `Digest realm="${this.realm}", qop="auth", algorithm=MD5, nonce="${this.nonce()}", opaque="${this.opaque}"${stale ? ', stale=true' : ''}`;
  }

  private nonce(): string {
    const ts = this.now().toString(36);
    return `${ts}.${createHmac('sha256', this.key).update(ts).digest('base64url').slice(0, 22)}`;
  }

  /** 'ok', 'stale' (a good nonce that expired) or 'bad'. */
  private nonceState(nonce: string): 'ok' | 'stale' | 'bad' {
    const [ts, mac] = nonce.split('.');
    if (!ts || !mac) return 'bad';
    const want = createHmac('sha256', this.key).update(ts).digest('base64url').slice(0, 22);
    if (mac.length !== want.length || !timingSafeEqual(Buffer.from(mac), Buffer.from(want))) return 'bad';
    const age = this.now() - parseInt(ts, 36);
    return age >= 0 && age <= this.nonceLifeMs ? 'ok' : 'stale';
  }

  /**
   * Checks a `Digest ...` Authorization header against `user`/`password` for this method
   * and request URI. Never throws: malformed headers are 'bad'.
   */
  verify(header: string, method: string, requestUri: string, user: string, password: string): 'ok' | 'stale' | 'bad' {
    const f = parseDigestHeader(header);
    if (!f || f.username !== user || f.realm !== this.realm || !f.nonce || !f.uri || !f.response) return 'bad';
    if (f.uri !== requestUri && safeDecode(f.uri) !== safeDecode(requestUri)) return 'bad';
    const algorithm = (f.algorithm ?? 'MD5').toUpperCase();
    if (algorithm !== 'MD5' && algorithm !== 'MD5-SESS') return 'bad';
    let ha1 = md5(`${user}:${this.realm}:${password}`);
    if (algorithm === 'MD5-SESS') ha1 = md5(`${ha1}:${f.nonce}:${f.cnonce ?? ''}`);
    const ha2 = md5(`${method}:${f.uri}`);
    let want: string;
    if (f.qop === undefined) want = md5(`${ha1}:${f.nonce}:${ha2}`);
    else if (f.qop === 'auth' && f.nc && f.cnonce) want = md5(`${ha1}:${f.nonce}:${f.nc}:${f.cnonce}:auth:${ha2}`);
    else return 'bad';
    const got = Buffer.from(f.response.toLowerCase());
    if (got.length !== want.length || !timingSafeEqual(got, Buffer.from(want))) return 'bad';
    return this.nonceState(f.nonce);
  }
}

function md5(s: string): string {
  return createHash('md5').update(s, 'utf8').digest('hex');
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `Digest k=v, k="v"` → fields; null when it is not a Digest header. Linear (no backtracking regex). */
export function parseDigestHeader(header: string): Record<string, string> | null {
  if (!/^digest\s/i.test(header) || header.length > 4096) return null;
  const out: Record<string, string> = {};
  let i = 7;
  const s = header;
  while (i < s.length) {
    while (i < s.length && (s[i] === ' ' || s[i] === ',' || s[i] === '\t')) i++;
    const eq = s.indexOf('=', i);
    if (eq < 0) break;
    const key = s.slice(i, eq).trim().toLowerCase();
    let value: string;
    if (s[eq + 1] === '"') {
      let j = eq + 2;
      value = '';
      while (j < s.length && s[j] !== '"') {
        if (s[j] === '\\' && j + 1 < s.length) j++;
        value += s[j];
        j++;
      }
      i = j + 1;
    } else {
      const comma = s.indexOf(',', eq + 1);
      const end = comma < 0 ? s.length : comma;
      value = s.slice(eq + 1, end).trim();
      i = end;
    }
    if (key) out[key] = value;
  }
  return out;
}
