import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { generate as Generate } from 'selfsigned';
import { FsError } from '../core/fs-error';
import type { Db } from '../index/db';
import { NodeStore } from '../index/nodes';
import { writeFileDurable } from '../core/durable-file';
import { fingerprintOfPem, type NodeKeys } from '../core/node-identity';

const KEY_FILE = 'node.key';

const CERT_FILE = 'node.crt';

/** Reads the keys of a home, or undefined when it has none yet. Throws EIO for unreadable or broken files. */
export function readKeys(homeDir: string): NodeKeys | undefined {
  const dir = join(homeDir, 'keys');
  if (!existsSync(join(dir, CERT_FILE)) || !existsSync(join(dir, KEY_FILE))) return undefined;
  try {
    const cert = readFileSync(join(dir, CERT_FILE), 'utf8');
    const key = readFileSync(join(dir, KEY_FILE), 'utf8');
    return { key, cert, id: fingerprintOfPem(cert) };
  } catch (err) {
    throw new FsError('EIO', `cannot read the node keys in ${dir}: ${(err as Error).message}`, err);
  }
}

/**
 * Creates the home's key pair and self-signed certificate when missing (EC P-256, valid 100
 * years: the pairing pins the certificate itself, so expiry would only break pairings), and makes
 * the self row of `nodes` carry the fingerprint (locations.owner_node follows by ON UPDATE
 * CASCADE). Files are 0600 in a 0700 `keys/`. Throws EIO when the files cannot be written.
 */
export async function ensureKeys(homeDir: string, db: Db, name: string): Promise<NodeKeys> {
  let keys = readKeys(homeDir);
  if (!keys) {
    const dir = join(homeDir, 'keys');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const now = new Date();
    // Loaded here: selfsigned pulls in ~200 modules, a third of every CLI command's start-up.
    const { generate } = require('selfsigned') as { generate: typeof Generate };
    const pems = await generate([{ name: 'commonName', value: `vdfs ${name}`.slice(0, 64) }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate: new Date(now.getTime() - 86_400_000),
      notAfterDate: new Date(now.getTime() + 100 * 365 * 86_400_000),
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      ],
    });
    try {
      // The key first: a certificate without its key would be read back as "keys present".
      writeFileDurable(join(dir, KEY_FILE), pems.private, 0o600); // created 0600: a key is never world-readable, even briefly
      writeFileDurable(join(dir, CERT_FILE), pems.cert, 0o600);
      chmodSync(join(dir, KEY_FILE), 0o600);
      chmodSync(join(dir, CERT_FILE), 0o600);
    } catch (err) {
      throw new FsError('EIO', `cannot write the node keys in ${dir}: ${(err as Error).message}`, err);
    }
    keys = { key: pems.private, cert: pems.cert, id: fingerprintOfPem(pems.cert) };
  }
  new NodeStore(db).setSelfId(keys.id, name);
  return keys;
}
