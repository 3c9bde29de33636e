import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { noBucketTrailingSlash } from '../../providers/s3/s3-client';

// s3rver runs in a child process with --openssl-legacy-provider: it makes ListObjectsV2
// continuation tokens with DES, which OpenSSL 3 refuses by default (every truncated listing, so
// every paginated or MaxKeys-limited one, would be a 500). A child also makes "the server is
// gone" real: stop() kills it.
//
// Signatures are always checked. s3rver's SigV4 check encodes query values with
// encodeURIComponent, which leaves !'()* as they are, where SigV4 (and the SDK) percent-encode
// them (RFC 3986): a listing whose prefix holds '(' (every conflict copy's name) would fail with
// SignatureDoesNotMatch although AWS accepts it. The child loads s3rver's authentication
// middleware with that one call replaced by s3rver's own RFC 3986 encoder (and fails loudly if
// the line is not found), so a real SigV4 bug in vdfs is still caught.
const CHILD = `
const Module = require('node:module');
const { readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');
const auth = join(dirname(process.argv[1]), 'middleware', 'authentication.js');
const src = readFileSync(auth, 'utf8');
const fixed = src.replace('[param, value].map(encodeURIComponent)', "[param, value].map(require('../utils').encodeURIComponentRFC3986)");
if (fixed === src) { console.error('s3rver changed: the SigV4 query-encoding fix no longer applies (' + auth + ')'); process.exit(1); }
const m = new Module(auth, module);
m.filename = auth;
m.paths = Module._nodeModulePaths(dirname(auth));
m._compile(fixed, auth);
m.loaded = true;
require.cache[auth] = m;
const S3rver = require(process.argv[1]);
const [port, directory, bucket] = process.argv.slice(2);
new S3rver({ port: Number(port), address: '127.0.0.1', directory, silent: true, configureBuckets: [{ name: bucket }] })
  .run().then((addr) => process.stdout.write(JSON.stringify({ port: addr.port }) + '\\n'), (err) => { console.error(err); process.exit(1); });
`;

function spawnServer(port: number, directory: string, bucket: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD, require.resolve('@20minutes/s3rver'), String(port), directory, bucket], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`s3rver did not start in 15 s: ${err}`));
    }, 15_000);
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve({ proc, port: (JSON.parse(out.slice(0, nl)) as { port: number }).port });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited (${code}) before listening: ${err}`));
    });
  });
}

/** Test credentials: s3rver accepts these (its defaults); the SDK reads them from the environment. */
export const TEST_KEY = 'S3RVER';
export const TEST_SECRET = 'S3RVER';

export interface S3TestServer {
  endpoint: string;
  port: number;
  bucket: string;
  /** A raw SDK client on the same server (to seed and inspect objects behind vdfs's back). */
  client: S3Client;
  put(key: string, body: Buffer | string): Promise<void>;
  /** The location URI of this bucket (`path`: '' or '/prefix', '/prefix/'), reached at `endpoint` (a proxy's, say). */
  uri(path?: string, endpoint?: string): string;
  /** Stops listening and drops open connections (the bucket becomes unreachable). Idempotent. */
  stop(): Promise<void>;
  /** Starts again on the same port with the same data. */
  restart(): Promise<void>;
  /** stop() and remove the data directory. */
  cleanup(): Promise<void>;
}

/**
 * Starts @20minutes/s3rver on a free loopback port with a temp directory and one bucket, and
 * sets AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in this process's environment (child vdfs
 * processes inherit them). Logging is silenced.
 */
export async function startS3Server(bucket = 'vdfs-test', port = 0): Promise<S3TestServer> {
  process.env.AWS_ACCESS_KEY_ID = TEST_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = TEST_SECRET;
  const directory = mkdtempSync(join(tmpdir(), 'vdfs-s3rver-'));
  let server: ChildProcess | undefined;
  let boundPort = port;
  const start = async () => {
    const s = await spawnServer(boundPort, directory, bucket);
    server = s.proc;
    boundPort = s.port;
  };
  await start();
  const endpoint = `http://127.0.0.1:${boundPort}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: TEST_KEY, secretAccessKey: TEST_SECRET },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  noBucketTrailingSlash(client);
  const stop = async () => {
    const s = server;
    server = undefined;
    if (!s || s.exitCode !== null || s.signalCode !== null) return;
    const exited = new Promise((r) => s.once('exit', r));
    s.kill('SIGKILL');
    await exited;
  };
  return {
    endpoint,
    port: boundPort,
    bucket,
    client,
    async put(key, body) {
      const b = typeof body === 'string' ? Buffer.from(body) : body;
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: b, ContentLength: b.length }));
    },
    uri: (path = '', at = endpoint) => `s3://${bucket}${path}?endpoint=${encodeURIComponent(at)}&region=us-east-1`,
    stop,
    async restart() {
      if (!server) await start();
    },
    async cleanup() {
      await stop();
      client.destroy();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
