import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FsError } from '../providers/fs-error';
import type { Home } from './home';
import { writeFileDurable } from './home';
import { ensureKeys } from './keys';
import type { WebdavUser } from './webdav/auth';
import { isLoopbackAddress } from './webdav/paths';

const USERS_FILE = 'webdav-users.json';

/** WebDAV users of a home (Basic auth, scrypt hashes), kept in webdav-users.json (0600). */
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
  tls?: { cert: string; key: string };
  /** SHA-256 fingerprint of the certificate when it is the node's self-signed one. */
  fingerprint?: string;
}

/**
 * What a WebDAV bind needs: on loopback, users only if some are configured; on any other
 * address, users (refused without) and TLS — the certificate in config (`webdav.tlsCert`,
 * `webdav.tlsKey`), else this node's self-signed certificate, whose fingerprint clients pin.
 * Throws EACCES with the command to run when users are missing.
 */
export async function webdavAccess(home: Home, host: string): Promise<WebdavAccess> {
  const users = readWebdavUsers(home);
  if (isLoopbackAddress(host)) return users.length > 0 ? { users } : {};
  if (users.length === 0) throw new FsError('EACCES', `WebDAV on ${host} (not loopback) needs a user: run \`vdfs webdav user add NAME\` first`);
  const certFile = home.config['webdav.tlsCert'];
  const keyFile = home.config['webdav.tlsKey'];
  if (certFile && keyFile) return { users, tls: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') } };
  const keys = await ensureKeys(home.dir, home.db, home.config.name);
  return { users, tls: { cert: keys.cert, key: keys.key }, fingerprint: keys.id };
}
