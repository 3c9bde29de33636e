import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsError } from '../core/fs-error';
import type { Home } from './home';
import { writeFileDurable } from '../core/durable-file';
import { ensureKeys } from './keys';
import type { WebdavUser } from '../mount/webdav/auth';
import type { WebdavCredential } from '../mount/webdav/authenticator';
import { isLoopbackAddress } from '../mount/webdav/paths';

const USERS_FILE = 'webdav-users.json';
const CREDENTIAL_FILE = 'webdav-credential.json';
/** The user name of the generated credential. */
export const CREDENTIAL_USER = 'vdfs';

/**
 * The home's WebDAV credential (user `vdfs`, a random 128-bit password), created on first
 * use and kept in the home (0600, never in the namespace). Its plain password is stored
 * because HTTP Digest, which Windows needs over plain http, cannot work from a hash.
 * Throws EIO when the file exists but is unreadable.
 */
export function ensureWebdavCredential(home: Home): WebdavCredential {
  const file = join(home.dir, CREDENTIAL_FILE);
  if (existsSync(file)) {
    try {
      const c = JSON.parse(readFileSync(file, 'utf8')) as WebdavCredential;
      if (typeof c.user === 'string' && typeof c.password === 'string' && c.password.length >= 16) return c;
    } catch {
      // fall through to the error below
    }
    throw new FsError('EIO', `${file} is damaged: remove it and run \`vdfs webdav credentials --reset\``);
  }
  return resetWebdavCredential(home);
}

/**
 * 128 random bits, base64url, after a letter: a password that began with `-` (1 in 64 of bare
 * base64url) was read as an option by `rclone obscure`, litmus and other getopt tools.
 */
export function newWebdavPassword(): string {
  return `v${randomBytes(16).toString('base64url')}`;
}

/** A new random password for the home credential (the old one stops working at the next daemon start). */
export function resetWebdavCredential(home: Home): WebdavCredential {
  const c: WebdavCredential = { user: CREDENTIAL_USER, password: newWebdavPassword() };
  writeFileDurable(join(home.dir, CREDENTIAL_FILE), JSON.stringify(c, null, 2) + '\n', 0o600);
  return c;
}

/** WebDAV users of a home (Basic auth, scrypt hashes), kept in webdav-users.json (0600). Throws EIO for a damaged file. */
export function readWebdavUsers(home: Home): WebdavUser[] {
  const file = join(home.dir, USERS_FILE);
  if (!existsSync(file)) return [];
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as WebdavUser[];
  } catch (err) {
    throw new FsError('EIO', `${file} is not valid JSON: fix or remove it (${(err as Error).message})`, err);
  }
}

export function writeWebdavUsers(home: Home, users: WebdavUser[]): void {
  writeFileDurable(join(home.dir, USERS_FILE), JSON.stringify(users, null, 2) + '\n', 0o600);
}

export interface WebdavAccess {
  users?: WebdavUser[];
  /** The home credential (absent only with insecureNoAuth). */
  credential?: WebdavCredential;
  insecureNoAuth?: boolean;
  tls?: { cert: string; key: string };
  /** SHA-256 fingerprint of the certificate when it is the node's self-signed one. */
  fingerprint?: string;
}

/**
 * What a WebDAV bind needs: credentials on every address (the home credential plus the
 * `webdav user add` users), unless `insecureNoAuth` is asked for on loopback; on any other
 * address also at least one added user (an explicit opt-in to the LAN) and TLS — the
 * certificate in config (`webdav.tlsCert`, `webdav.tlsKey`), else this node's self-signed
 * certificate, whose fingerprint clients pin. Throws EACCES with the command to run when
 * users are missing, EINVAL for insecureNoAuth beyond loopback.
 */
export async function webdavAccess(home: Home, host: string, opts: { insecureNoAuth?: boolean } = {}): Promise<WebdavAccess> {
  const users = readWebdavUsers(home);
  if (isLoopbackAddress(host)) return opts.insecureNoAuth ? { insecureNoAuth: true } : { users, credential: ensureWebdavCredential(home) };
  if (opts.insecureNoAuth) throw new FsError('EINVAL', `--webdav-insecure-no-auth is for loopback only, not ${host}`);
  if (users.length === 0) throw new FsError('EACCES', `WebDAV on ${host} (not loopback) needs a user: run \`vdfs webdav user add NAME\` first`);
  const certFile = home.config['webdav.tlsCert'];
  const keyFile = home.config['webdav.tlsKey'];
  const credential = ensureWebdavCredential(home);
  if (certFile && keyFile) return { users, credential, tls: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') } };
  const keys = await ensureKeys(home.dir, home.db, home.config.name);
  return { users, credential, tls: { cert: keys.cert, key: keys.key }, fingerprint: keys.id };
}
