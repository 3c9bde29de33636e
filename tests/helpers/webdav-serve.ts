/**
 * Child-process entry point for the WebDAV tests (until `vdfs serve --webdav` lands):
 * opens a home, builds the real VFS and serves it. Prints one JSON line
 * `{"url":...,"port":...}` on stdout when listening; stops cleanly on SIGTERM/SIGINT.
 * Usage: node dist/tests/helpers/webdav-serve.js HOME [HOST] [PORT]
 */
import { Home } from '../../mount/home';
import { createVfs } from '../../mount/vfs';
import { startWebdav } from '../../mount/webdav/server';

async function main(): Promise<void> {
  const [homeDir, host = '127.0.0.1', port = '0'] = process.argv.slice(2);
  if (!homeDir) throw new Error('usage: webdav-serve HOME [HOST] [PORT]');
  const home = Home.open(homeDir);
  // No block cache yet on main: every miss is fetched (the same stand-in `vdfs cat` uses)
  const vfs = await createVfs(home, { blocks: { get: (_key, fetch) => fetch() } });
  const server = await startWebdav(vfs, { host, port: Number(port), maxBodyBytes: Number(process.env.VDFS_WEBDAV_MAX_BODY ?? 1 << 20) });
  process.stdout.write(JSON.stringify({ url: server.url, port: server.port }) + '\n');
  const stop = async () => {
    await server.close();
    await vfs.close();
    home.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((err) => {
  process.stderr.write(`webdav-serve: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
