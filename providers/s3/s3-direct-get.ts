import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { HttpPool, type GetAnswer as HttpAnswer } from '../../core/http-get';
import type { S3Timeouts } from './s3-client';
import { amzDateOf, EMPTY_SHA256, encodeKeyPath, signGet, type SigV4Credentials } from './s3-sigv4';

/** The part of a GetObject answer the provider reads. */
export interface GetAnswer {
  ETag?: string;
  ContentRange?: string;
  ContentLength?: number;
  Body: Readable;
}

/** Where GetObjects go, as the SDK resolved it for the first one. */
interface Route {
  protocol: 'http:' | 'https:';
  hostname: string;
  port?: number;
  /** The path before the encoded key: `/` (virtual-hosted) or `/BUCKET/` (path-style). */
  prefix: string;
  /** The Host header the SDK signed. */
  host: string;
  region: string;
  service: string;
}

interface SdkRequest {
  protocol?: string;
  hostname?: string;
  port?: number;
  path?: string;
  query?: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** An error shaped like the SDK's service errors (name = S3's code, $metadata.httpStatusCode), so s3Error and the retry loop read it alike. */
function serviceError(status: number, body: string): Error {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? (status === 404 ? 'NotFound' : status === 412 ? 'PreconditionFailed' : `Http${status}`);
  const msg = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? `HTTP ${status}`;
  return Object.assign(new Error(msg), { name: code, $metadata: { httpStatusCode: status } });
}

/**
 * GetObject without the SDK's per-request machinery (middleware stack, endpoint rules,
 * schema-driven deserialisation: ~1 ms of CPU per request here, most of a small file's cost
 * through the mount). The first GetObject goes through the SDK; a middleware records the
 * endpoint, path style and signing scope it resolved, and later GETs go straight to that
 * endpoint on our own kept-alive connections (core/http-get.ts: the body goes straight into
 * the blocks its reader lends), signed (SigV4) with the SDK's own
 * credentials provider. Anything the route cannot be learnt from (a query beyond x-id, a path
 * that is not prefix + key, another signing algorithm) leaves every GET on the SDK.
 */
export class DirectGet {
  private route: Route | undefined;
  private refused = false;
  private readonly pool = new HttpPool();

  constructor(
    private readonly client: S3Client,
    private readonly timeouts: S3Timeouts,
  ) {
    type Args = { request: unknown; input: unknown };
    const learnRoute = (next: (args: Args) => Promise<unknown>, context: { commandName?: string }) => async (args: Args) => {
      if (!this.route && !this.refused && context.commandName === 'GetObjectCommand') this.learn(args.request as SdkRequest, (args.input as { Key?: string }).Key ?? '');
      return next(args);
    };
    client.middlewareStack.addRelativeTo(learnRoute as unknown as Parameters<S3Client['middlewareStack']['addRelativeTo']>[0], {
      relation: 'after',
      toMiddleware: 'httpSigningMiddleware',
      name: 'vdfsLearnGetRoute',
    });
  }

  /** Whether GETs bypass the SDK now. */
  get ready(): boolean {
    return this.route !== undefined;
  }

  private learn(req: SdkRequest, key: string): void {
    const auth = /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request,/.exec(req.headers?.authorization ?? '');
    const suffix = encodeKeyPath(key);
    const queryOk = Object.keys(req.query ?? {}).every((k) => k === 'x-id');
    const path = req.path ?? '';
    if (!auth || !queryOk || !key || !path.endsWith(suffix) || (req.protocol !== 'http:' && req.protocol !== 'https:') || !req.hostname) {
      this.refused = true;
      return;
    }
    const host = req.headers?.host ?? req.hostname;
    this.route = { protocol: req.protocol, hostname: req.hostname, port: req.port, prefix: path.slice(0, path.length - suffix.length), host, region: auth[1], service: auth[2] };
  }

  /**
   * GET `key` (optionally a `Range` header value and an If-Match ETag, quoted). Resolves with
   * the headers and the body as it arrives; rejects with an SDK-shaped error for an HTTP
   * error, a network error (code ECONNRESET...) or a TimeoutError. `collect`: see HttpPool.get.
   */
  async get(key: string, range: string | undefined, ifMatch: string | undefined, signal?: AbortSignal, collect = 0): Promise<GetAnswer> {
    const r = this.route!;
    const identity = (await (this.client.config.credentials as () => Promise<SigV4Credentials>)()) as SigV4Credentials;
    const path = r.prefix + encodeKeyPath(key);
    const headers: Record<string, string> = { host: r.host, 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': amzDateOf(new Date()) };
    if (range) headers.range = range;
    if (ifMatch) headers['if-match'] = ifMatch;
    if (identity.sessionToken) headers['x-amz-security-token'] = identity.sessionToken;
    headers.authorization = signGet(path, headers, identity, r.region, r.service);
    const res = await this.send(r, path, headers, signal, collect);
    const status = res.status;
    if (status === 200 || status === 206) {
      const len = res.headers['content-length'];
      return { ETag: res.headers.etag, ContentRange: res.headers['content-range'], ContentLength: len === undefined ? undefined : Number(len), Body: res };
    }
    let body = '';
    res.setEncoding('utf8');
    for await (const c of res) if (body.length < 64 * 1024) body += c as string;
    throw serviceError(status, body);
  }

  private send(r: Route, path: string, headers: Record<string, string>, signal: AbortSignal | undefined, collect: number): Promise<HttpAnswer> {
    return this.pool.get({ protocol: r.protocol, hostname: r.hostname, port: r.port, path }, headers, this.timeouts, signal, collect);
  }

  /** Closes the direct GETs' connections. */
  close(): void {
    this.pool.close();
  }
}
