import { S3Client } from '@aws-sdk/client-s3';
import { FsError } from '../../core/fs-error';
import { keptAliveAgents } from '../../core/http-get';
import type { S3Location } from './s3-uri';

/** Per-request timeouts. */
export interface S3Timeouts {
  /** TCP/TLS connect. */
  connectMs: number;
  /** A socket idle this long (no header, no body byte) is abandoned and the request retried. */
  idleMs: number;
}

export const DEFAULT_TIMEOUTS: S3Timeouts = { connectMs: 2000, idleMs: 5000 };

/**
 * An SDK client for one location. Credentials come from the standard AWS chain (environment,
 * shared config/credentials files, SSO, instance roles). The SDK's own retries are off: the
 * provider retries with a bounded total wait (s3-retry.ts), which the SDK cannot promise.
 * Checksums are computed/validated only when an operation requires them: with the defaults,
 * streamed uploads carry aws-chunked framing that some S3-compatible servers store verbatim.
 */
export function createS3Client(loc: S3Location, timeouts: S3Timeouts): S3Client {
  // Kept-alive sockets, at most 64: content GETs have their own (s3-direct-get.ts).
  const agents = keptAliveAgents(64);
  const client = new S3Client({
    region: loc.region,
    endpoint: loc.endpoint,
    forcePathStyle: loc.endpoint !== undefined,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Handler options rather than a NodeHttpHandler instance: @smithy/node-http-handler is the
    // SDK's dependency, not ours.
    requestHandler: {
      connectionTimeout: timeouts.connectMs,
      socketTimeout: timeouts.idleMs,
      httpAgent: agents.http,
      httpsAgent: agents.https,
    },
  });
  if (loc.endpoint !== undefined) noBucketTrailingSlash(client);
  return client;
}

/**
 * Path-style bucket requests (ListObjectsV2, HeadBucket) go to `/BUCKET` rather than the
 * `/BUCKET/` that current SDK versions send and sign. Every S3 service accepts both, but some
 * S3-compatible servers (s3rver among them) canonicalise the path without the slash when
 * checking the signature and answer SignatureDoesNotMatch. Runs before signing.
 */
export function noBucketTrailingSlash(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { path?: string };
      if (typeof req.path === 'string' && /^\/[^/]+\/$/.test(req.path)) req.path = req.path.slice(0, -1);
      return next(args);
    },
    { step: 'build', name: 'vdfsNoBucketTrailingSlash' },
  );
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** True for "no such key" answers (GetObject says NoSuchKey, HeadObject only 404). */
export function isNotFound(err: unknown): boolean {
  const name = (err as Error)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || (httpStatus(err) === 404 && name !== 'NoSuchBucket');
}

/** Maps a non-retryable SDK error to FsError: 404 ENOENT, 403 EACCES, 412 ESTALE, else EIO. */
export function s3Error(err: unknown, what: string): FsError {
  if (err instanceof FsError) return err;
  const e = err as Error & { Code?: string };
  const name = e?.name ?? 'Error';
  const msg = `${what}: ${name}${e?.message && e.message !== name ? `: ${e.message}` : ''}`;
  const s = httpStatus(err);
  if (name === 'NoSuchBucket') return new FsError('ENOENT', `${msg} (the bucket does not exist)`, err);
  if (isNotFound(err)) return new FsError('ENOENT', msg, err);
  if (s === 403 || name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch')
    return new FsError('EACCES', `${msg} (check the AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)`, err);
  if (s === 412 || name === 'PreconditionFailed') return new FsError('ESTALE', `${msg} (the object changed on the server)`, err);
  if ((err as { code?: string })?.code === 'CredentialsProviderError' || name === 'CredentialsProviderError')
    return new FsError('EACCES', `${what}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)`, err);
  return new FsError('EIO', msg, err);
}
