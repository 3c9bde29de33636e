import type { Command } from 'commander';
import type { runAuthFlow as RunAuthFlow } from '../../providers/gdrive/gdrive-auth';
import { DEFAULT_AUTH_URL, DEFAULT_CLIENT_ID, DEFAULT_TOKEN_URL, writeTokens } from '../../providers/gdrive/gdrive-tokens';
import { openHome, type GlobalOpts } from './context';

interface AuthOpts { accessToken?: string; refreshToken?: string; clientId: string; clientSecret?: string; tokenUrl: string; authUrl: string }

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
    .option('--access-token <token>', 'store this access token (obtained elsewhere) instead of running the flow')
    .option('--refresh-token <token>', 'with --access-token: the refresh token')
    .option('--client-id <id>', 'OAuth client id (default $VDFS_GDRIVE_CLIENT_ID or vdfs\'s own)', DEFAULT_CLIENT_ID)
    .option('--client-secret <secret>', 'OAuth client secret, for clients that have one')
    .option('--token-url <url>', 'OAuth token endpoint', process.env.VDFS_GDRIVE_TOKEN_URL || DEFAULT_TOKEN_URL)
    .option('--auth-url <url>', 'OAuth consent page', process.env.VDFS_GDRIVE_AUTH_URL || DEFAULT_AUTH_URL)
    .action(async (o: AuthOpts) => {
      const home = openHome(g());
      const tokens = o.accessToken
        ? { access_token: o.accessToken, refresh_token: o.refreshToken, client_id: o.clientId, client_secret: o.clientSecret, token_url: o.tokenUrl }
        : await (require('../../providers/gdrive/gdrive-auth') as { runAuthFlow: typeof RunAuthFlow }).runAuthFlow({
            clientId: o.clientId, clientSecret: o.clientSecret, authUrl: o.authUrl, tokenUrl: o.tokenUrl,
            show: (url) => process.stdout.write(`Open this URL in a browser and allow access:\n\n  ${url}\n\nOn another machine: after allowing, paste the address the browser ends up on (or the code) here.\n`),
            paste: pasted,
          });
      const file = writeTokens(tokens, home.dir);
      process.stdout.write(`Google Drive authorised; tokens stored in ${file} (mode 0600)\n`);
      process.exit(0); // stdin may still be open for the paste fallback
    });
}
