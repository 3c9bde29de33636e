import { createHash, X509Certificate } from 'node:crypto';
import { FsError } from './fs-error';

/** This node's TLS identity: the key, the self-signed certificate and its fingerprint (the node id). */
export interface NodeKeys {
  /** PEM private key. */
  key: string;
  /** PEM certificate. */
  cert: string;
  /** SHA-256 of the certificate's DER, lower-case hex: the node id. */
  id: string;
}

/** SHA-256 (lower-case hex) of a certificate's DER bytes. */
export function fingerprintOfDer(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

/** The node id of a PEM certificate. Throws EINVAL when it is not one. */
export function fingerprintOfPem(pem: string): string {
  try {
    return fingerprintOfDer(new X509Certificate(pem).raw);
  } catch (err) {
    throw new FsError('EINVAL', `not a certificate: ${(err as Error).message}`, err);
  }
}

/** The short, human form of a node id: the first 16 hex digits in groups of four. */
export function shortId(id: string): string {
  return id.slice(0, 16).match(/.{4}/g)!.join('-');
}
