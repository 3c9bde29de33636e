import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { FsError } from '../../core/fs-error';
import { requireTokenSafeUrl } from '../../providers/gdrive/gdrive-uri';
import type { runAuthFlow as RunAuthFlow } from '../../providers/gdrive/gdrive-auth';
import { DEFAULT_AUTH_URL, DEFAULT_CLIENT_ID, DEFAULT_TOKEN_URL, writeTokens } from '../../providers/gdrive/gdrive-tokens';
import { openHome, type GlobalOpts } from './context';

interface AuthOpts {
  accessToken?: string;
  accessTokenFile?: string;
  refreshToken?: string;
  refreshTokenFile?: string;
  clientId: string;
  clientSecret?: string;
  tokenUrl: string;
  authUrl: string;
}

/** All of stdin, once (shared by `--access-token -` and `--refresh-token -`: one line each, in that order). */
let stdinLines: Promise<string[]> | undefined;
function stdinLine(i: number): Promise<string> {
  stdinLines ??= new Promise((resolve, reject) => {
    let buf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => (buf += d));
    process.stdin.once('end', () => resolve(buf.split(/\r?\n/)));
    process.stdin.once('error', reject);
  });
  return stdinLines.then((l) => l[i] ?? '');
}

/**
 * A token given as `-` (stdin), through a file, or (visible to every user through ps) on the
 * command line. Throws EINVAL for an empty one, EIO for an unreadable file.
 */
async function tokenFrom(value: string | undefined, file: string | undefined, line: number, what: string): Promise<string | undefined> {
  if (value !== undefined && file !== undefined) throw new FsError('EINVAL', `give --${what} or --${what}-file, not both`);
  let tok: string | undefined;
  if (file !== undefined) {
    try {
      tok = readFileSync(file, 'utf8').split(/\r?\n/)[0];
    } catch (err) {
      throw new FsError('EIO', `cannot read --${what}-file ${file}: ${(err as Error).message}`, err);
    }
  } else if (value === '-') tok = await stdinLine(line);
  else tok = value;
  if (tok === undefined) return undefined;
  tok = tok.trim();
  if (!tok) throw new FsError('EINVAL', `the ${what} is empty`);
  return tok;
}

/** One line from stdin (the paste-the-code fallback); '' when stdin is closed. */
function pasted(): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    process.stdin.once('end', () => resolve(buf));
  });
}

/** `vdfs auth gdrive`: the OAuth flow (loopback redirect, PKCE), or tokens obtained elsewhere. Throws EACCES, ETIMEDOUT, EHOSTDOWN, EIO. */
export function registerAuthCommands(program: Command, g: () => GlobalOpts): void {
  const auth = program.command('auth').description('authorise vdfs with cloud services');
  auth
    .command('gdrive')
    .description('authorise Google Drive: opens the consent page (loopback redirect with PKCE; paste the code or the redirect URL on a headless machine)')
    .option(
      '--access-token <token>',
      'store this access token (obtained elsewhere) instead of running the flow; "-" reads it from stdin. On the command line it is visible to other users (ps): prefer "-" or --access-token-file',
    )
    .option('--access-token-file <file>', 'like --access-token, read from the first line of FILE')
    .option(
      '--refresh-token <token>',
      'with an access token: the refresh token; "-" reads it from stdin (the line after the access token when both are "-"); visible to other users on the command line',
    )
    .option('--refresh-token-file <file>', 'like --refresh-token, read from the first line of FILE')
    .option('--client-id <id>', "OAuth client id (default $VDFS_GDRIVE_CLIENT_ID or vdfs's own)", DEFAULT_CLIENT_ID)
    .option('--client-secret <secret>', 'OAuth client secret, for clients that have one')
    .option('--token-url <url>', 'OAuth token endpoint', process.env.VDFS_GDRIVE_TOKEN_URL || DEFAULT_TOKEN_URL)
    .option('--auth-url <url>', 'OAuth consent page', process.env.VDFS_GDRIVE_AUTH_URL || DEFAULT_AUTH_URL)
    .action(async (o: AuthOpts) => {
      const home = openHome(g());
      requireTokenSafeUrl(o.tokenUrl, '--token-url');
      const accessToken = await tokenFrom(o.accessToken, o.accessTokenFile, 0, 'access-token');
      const refreshToken = await tokenFrom(o.refreshToken, o.refreshTokenFile, o.accessToken === '-' ? 1 : 0, 'refresh-token');
      if (refreshToken !== undefined && accessToken === undefined) throw new FsError('EINVAL', 'a refresh token needs --access-token or --access-token-file');
      const tokens = accessToken
        ? { access_token: accessToken, refresh_token: refreshToken, client_id: o.clientId, client_secret: o.clientSecret, token_url: o.tokenUrl }
        : await (require('../../providers/gdrive/gdrive-auth') as { runAuthFlow: typeof RunAuthFlow }).runAuthFlow({
            clientId: o.clientId,
            clientSecret: o.clientSecret,
            authUrl: o.authUrl,
            tokenUrl: o.tokenUrl,
            show: (url) =>
              process.stdout.write(
                `Open this URL in a browser and allow access:\n\n  ${url}\n\nOn another machine: after allowing, paste the address the browser ends up on (or the code) here.\n`,
              ),
            paste: pasted,
          });
      const file = writeTokens(tokens, home.dir);
      process.stdout.write(`Google Drive authorised; tokens stored in ${file} (mode 0600)\n`);
      process.exit(0); // stdin may still be open for the paste fallback
    });
}
