import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FsError } from '../../core/fs-error';

/** What `vdfs auth gdrive` stores (in the vdfs home, mode 0600). */
export interface GdriveTokens {
  access_token: string;
  refresh_token?: string;
  /** ms since the epoch; absent: unknown (a 401 then triggers one refresh). */
  expiry_date?: number;
  client_id: string;
  client_secret?: string;
  /** The OAuth token endpoint (overridable for self-hosted and test servers). */
  token_url: string;
}

export const DEFAULT_TOKEN_URL = 'https://oauth2.googleapis.com/token';
export const DEFAULT_AUTH_URL = 'https://accounts.google.com/o/oauth2/v2/auth';
/** vdfs's installed-app client id; override with --client-id or VDFS_GDRIVE_CLIENT_ID. */
export const DEFAULT_CLIENT_ID = process.env.VDFS_GDRIVE_CLIENT_ID || 'vdfs-installed-app.apps.googleusercontent.com';

/**
 * Where the tokens of the vdfs home `dir` are: `<dir>/gdrive/token.json`. Without `dir` (a
 * provider opened outside a home), VDFS_HOME, then the default home.
 */
export function tokenFile(dir?: string): string {
  const home = dir ?? process.env.VDFS_HOME ?? join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'vdfs');
  return join(home, 'gdrive', 'token.json');
}

/** The stored tokens. Throws EACCES naming `vdfs auth gdrive` when there are none. */
export function readTokens(dir?: string): GdriveTokens {
  const file = tokenFile(dir);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as GdriveTokens;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FsError('EACCES', `no Google Drive authorisation (${file} is missing): run \`vdfs auth gdrive\``);
    throw new FsError('EIO', `cannot read ${file}: ${(err as Error).message}`, err);
  }
}

/** Writes the tokens atomically with mode 0600 (they grant access to the whole Drive). Throws EIO. */
export function writeTokens(t: GdriveTokens, dir?: string): string {
  const file = tokenFile(dir);
  try {
    mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(t, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } catch (err) {
    throw new FsError('EIO', `cannot store Drive tokens in ${file}: ${(err as Error).message}`, err);
  }
  return file;
}
