import { createHash, createHmac } from 'node:crypto';

/** The SHA-256 of an empty body: what a GET signs as its payload. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** What a request is signed with (the SDK's resolved identity). */
export interface SigV4Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * An object key as S3 puts it in a URL path and in the canonical request: every byte
 * %-encoded except RFC 3986's unreserved characters and '/', as the SDK does (its
 * extendedEncodeURIComponent also encodes `!'()*`, which encodeURIComponent leaves).
 */
export function encodeKeyPath(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

/** `20130524T000000Z` for a Date. */
export function amzDateOf(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

let lastKey: { id: string; key: Buffer } | undefined;

/** The SigV4 signing key of a day, region and service; the last one is kept (it changes once a day). */
function signingKey(secret: string, day: string, region: string, service: string): Buffer {
  const id = `${secret}\0${day}\0${region}\0${service}`;
  if (lastKey?.id === id) return lastKey.key;
  const hmac = (k: string | Buffer, s: string) => createHmac('sha256', k).update(s).digest();
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), 'aws4_request');
  lastKey = { id, key };
  return key;
}

/**
 * The Authorization header of a bodiless GET (AWS Signature Version 4, signed headers).
 * `path` is already encoded (encodeKeyPath), there is no query, and `headers` are lowercase
 * names, each of which is signed; they must include host, x-amz-date and x-amz-content-sha256.
 */
export function signGet(path: string, headers: Record<string, string>, cred: SigV4Credentials, region: string, service: string): string {
  const names = Object.keys(headers).sort();
  const canonical = ['GET', path, '', ...names.map((n) => `${n}:${headers[n].trim()}`), '', names.join(';'), headers['x-amz-content-sha256']].join('\n');
  const amzDate = headers['x-amz-date'];
  const scope = `${amzDate.slice(0, 8)}/${region}/${service}/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
  const signature = createHmac('sha256', signingKey(cred.secretAccessKey, amzDate.slice(0, 8), region, service))
    .update(toSign)
    .digest('hex');
  return `AWS4-HMAC-SHA256 Credential=${cred.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
}
