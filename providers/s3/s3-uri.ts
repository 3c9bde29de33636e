import { FsError } from '../../core/fs-error';

/** Where an S3 location lives: `s3://BUCKET[/PREFIX]?endpoint=URL&region=R`. */
export interface S3Location {
  bucket: string;
  /** '' for the whole bucket, else the key prefix ending with '/'. */
  prefix: string;
  /** A custom endpoint (MinIO, Ceph, R2, a test server): path-style addressing is used with it. */
  endpoint?: string;
  region: string;
}

// Permissive on purpose (MinIO/Ceph accept more than AWS's DNS-style rules), but never '/', '?' or '#'.
const BUCKET_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;

/**
 * Parses and canonicalises an s3:// URI. Throws EINVAL with the accepted form for anything
 * else: a missing or malformed bucket, a prefix with '.'/'..' components, an endpoint that is not
 * http(s), unknown query parameters (a typo must not be silently ignored).
 */
export function parseS3Uri(uri: string): S3Location {
  const form = 's3://BUCKET[/PREFIX]?endpoint=URL&region=R';
  const m = /^s3:\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?$/.exec(uri);
  if (!m) throw new FsError('EINVAL', `cannot read ${JSON.stringify(uri)} as an S3 location: use ${form}`);
  const bucket = m[1];
  if (!BUCKET_RE.test(bucket)) throw new FsError('EINVAL', `${JSON.stringify(bucket)} is not a bucket name (${form})`);
  const parts: string[] = [];
  for (const raw of m[2].split('/')) {
    if (raw === '') continue;
    let part: string;
    try {
      part = decodeURIComponent(raw);
    } catch {
      throw new FsError('EINVAL', `bad %-escape in the prefix of ${uri}`);
    }
    if (part === '.' || part === '..' || part.includes('\0') || part.includes('/'))
      throw new FsError('EINVAL', `the prefix of ${uri} has an invalid component ${JSON.stringify(part)}`);
    parts.push(part);
  }
  const q = new URLSearchParams(m[3] ?? '');
  for (const k of q.keys()) if (k !== 'endpoint' && k !== 'region') throw new FsError('EINVAL', `unknown parameter ${JSON.stringify(k)} in ${uri} (${form})`);
  const endpoint = q.get('endpoint') ?? undefined;
  if (endpoint !== undefined) {
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      throw new FsError('EINVAL', `endpoint ${JSON.stringify(endpoint)} is not a URL (e.g. http://127.0.0.1:9000)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FsError('EINVAL', `endpoint ${endpoint} must be http:// or https://`);
  }
  const region = q.get('region') || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
  return { bucket, prefix: parts.length ? `${parts.join('/')}/` : '', endpoint, region };
}

/** The canonical URI stored in the index (region and endpoint made explicit, prefix normalised). */
export function formatS3Uri(l: S3Location): string {
  const q = new URLSearchParams();
  if (l.endpoint) q.set('endpoint', l.endpoint);
  q.set('region', l.region);
  const prefix = l.prefix ? `/${l.prefix.slice(0, -1).split('/').map(encodeURIComponent).join('/')}` : '';
  return `s3://${l.bucket}${prefix}?${q.toString()}`;
}
