import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { auth as gauth } from '@googleapis/drive';
import { FsError } from '../../core/fs-error';
import { requireTokenSafeUrl } from './gdrive-uri';
import { readTokens, writeTokens, type GdriveTokens } from './gdrive-tokens';

/** google-auth-library's OAuth2 client, through @googleapis/drive (it is not a direct dependency). */
export type OAuth2Client = InstanceType<typeof gauth.OAuth2>;

const FIX = 'run `vdfs auth gdrive` to authorise vdfs again';

/**
 * An OAuth2 client from the stored tokens. It refreshes the access token by itself (on expiry,
 * and once after a 401) and writes every refreshed token back to the home. Throws EACCES
 * (naming `vdfs auth gdrive`) when nothing is stored.
 */
export function authClient(dir?: string): OAuth2Client {
  const t = readTokens(dir);
  requireTokenSafeUrl(t.token_url, 'the stored token_url');
  const client = new gauth.OAuth2({
    clientId: t.client_id,
    clientSecret: t.client_secret,
    endpoints: { oauth2TokenUrl: t.token_url },
    // Tokens stored without an expiry, or revoked early: a 401 triggers one refresh.
    forceRefreshOnFailure: true,
  });
  client.setCredentials({ access_token: t.access_token, refresh_token: t.refresh_token, expiry_date: t.expiry_date });
  client.on('tokens', (n) => {
    try {
      const cur = readTokens(dir);
      writeTokens({ ...cur, access_token: n.access_token ?? cur.access_token, refresh_token: n.refresh_token ?? cur.refresh_token, expiry_date: n.expiry_date ?? undefined }, dir);
    } catch {
      /* the next refresh tries again; the token in memory works meanwhile */
    }
  });
  return client;
}

/** An auth failure (401, a refresh answered invalid_grant) as EACCES naming the command that fixes it; undefined for others. */
export function authError(err: unknown, what: string): FsError | undefined {
  const e = err as { response?: { status?: number; data?: { error?: unknown } }; message?: string };
  const status = e?.response?.status;
  const grant = e?.response?.data?.error === 'invalid_grant' || /invalid_grant/.test(e?.message ?? '');
  if (status === 401 || grant || /No refresh token|invalid_grant/.test(e?.message ?? ''))
    return new FsError('EACCES', `${what}: Google Drive refused the stored authorisation (revoked or expired): ${FIX}`, err);
  return undefined;
}

export interface AuthFlowOptions {
  clientId: string;
  clientSecret?: string;
  authUrl: string;
  tokenUrl: string;
  scope?: string;
  /** Called with the URL the user must open. */
  show(url: string): void;
  /** Resolves with what the user pasted (the code, or the whole redirect URL): the headless fallback. */
  paste?: () => Promise<string>;
  /** Gives up after this long (default 5 minutes). */
  timeoutMs?: number;
}

/** What the consent step answered: a code, or why there is none. */
type Answer = { code?: string; error?: string };

/** The loopback server the consent page redirects to: it settles with the code when the state matches. */
function redirectListener(state: string, settle: (a: Answer) => void): Server {
  return createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const code = u.searchParams.get('code');
    const error = u.searchParams.get('error');
    if (!code && !error) {
      res.writeHead(404).end();
      return;
    }
    const ok = !!code && u.searchParams.get('state') === state;
    res
      .writeHead(ok ? 200 : 400, { 'content-type': 'text/plain; charset=utf-8' })
      .end(ok ? 'vdfs is authorised; you can close this window.\n' : 'vdfs authorisation failed; see the terminal.\n');
    settle(ok ? { code: code! } : { error: error ?? 'the state did not match (an old or foreign redirect)' });
  });
}

/** The consent page's URL: PKCE S256, offline access (a refresh token), consent asked every time. */
function consentUrl(o: AuthFlowOptions, redirect: string, challenge: string, state: string): string {
  const url = new URL(o.authUrl);
  for (const [k, v] of Object.entries({
    client_id: o.clientId,
    redirect_uri: redirect,
    response_type: 'code',
    scope: o.scope ?? 'https://www.googleapis.com/auth/drive',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    access_type: 'offline',
    prompt: 'consent',
  }))
    url.searchParams.set(k, v);
  return url.toString();
}

/** The headless fallback: a pasted redirect URL (its page failed to load) or the bare code settles the flow too. */
function takePaste(o: AuthFlowOptions, settle: (a: Answer) => void): void {
  o.paste?.().then(
    (text) => {
      const t = text.trim();
      if (!t) return;
      if (/^https?:/.test(t)) {
        const u = new URL(t);
        settle(u.searchParams.get('code') ? { code: u.searchParams.get('code')! } : { error: u.searchParams.get('error') ?? 'no code in the pasted URL' });
      } else settle({ code: t });
    },
    () => undefined,
  );
}

/** The code, within `timeoutMs`. Throws ETIMEDOUT, EACCES (refused). */
async function awaitCode(got: Promise<Answer>, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    got,
    new Promise<Answer>((res) => {
      timer = setTimeout(() => res({ error: 'timeout' }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (r.error === 'timeout') throw new FsError('ETIMEDOUT', `no answer from the consent page in ${Math.round(timeoutMs / 1000)} s`);
  if (!r.code) throw new FsError('EACCES', `authorisation refused: ${r.error}`);
  return r.code;
}

/** Exchanges the code (with the PKCE verifier) for tokens. Throws EHOSTDOWN (unreachable), EACCES (refused). */
async function exchangeCode(o: AuthFlowOptions, code: string, redirect: string, verifier: string): Promise<GdriveTokens> {
  const body = new URLSearchParams({ grant_type: 'authorization_code', code, client_id: o.clientId, redirect_uri: redirect, code_verifier: verifier });
  if (o.clientSecret) body.set('client_secret', o.clientSecret);
  let res: Response;
  try {
    res = await fetch(o.tokenUrl, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  } catch (err) {
    throw new FsError('EHOSTDOWN', `cannot reach the token endpoint ${o.tokenUrl}: ${(err as Error).message}`, err);
  }
  const j = (await res.json().catch(() => ({}))) as { access_token?: string; refresh_token?: string; expires_in?: number; error?: string; error_description?: string };
  if (!res.ok || !j.access_token) throw new FsError('EACCES', `the token endpoint refused the code: ${j.error ?? res.status} ${j.error_description ?? ''}`.trim());
  return {
    access_token: j.access_token,
    refresh_token: j.refresh_token,
    expiry_date: j.expires_in ? Date.now() + j.expires_in * 1000 : undefined,
    client_id: o.clientId,
    client_secret: o.clientSecret,
    token_url: o.tokenUrl,
  };
}

/**
 * The installed-app OAuth flow with PKCE (S256) and a loopback redirect: listens on
 * 127.0.0.1, shows the consent URL, takes the code from the redirect (or from a paste), and
 * exchanges it. Returns the tokens to store. Throws EACCES (refused, bad state), ETIMEDOUT, EIO.
 */
export async function runAuthFlow(o: AuthFlowOptions): Promise<GdriveTokens> {
  const verifier = randomBytes(48).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('hex');
  let settle!: (v: Answer) => void;
  const got = new Promise<Answer>((r) => (settle = r));
  const server = redirectListener(state, settle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const redirect = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  try {
    o.show(consentUrl(o, redirect, challenge, state));
    takePaste(o, settle);
    const code = await awaitCode(got, o.timeoutMs ?? 300_000);
    return await exchangeCode(o, code, redirect, verifier);
  } finally {
    server.close();
    server.closeAllConnections();
  }
}
