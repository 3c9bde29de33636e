import { noteSwallowed } from '../../core/swallowed';
import type { Logger } from 'pino';
import { deleteMeta, setMeta, getMeta } from '../../index/db';
import type { Home } from '../home';
import { readKeys } from '../keys';
import { FsError } from '../../core/fs-error';
import { PeerReplication } from './replicator';
import { startPeerServer, type PeerServer } from '../../mount/peer-server/peer-server';
import type { PairingService, PeerDirectory } from '../../mount/peer-server/peer-sources';
import { PeerStore } from '../../index/peer-store';
import { acceptPairing } from './pairing';
import { ServeIndex } from './serve-index';

/** Where a running peer server listens: written at start so `vdfs peer invite` can print it. */
const SERVER_KEY = 'peer.server';

export interface PeerServices {
  /** The peer server's URL, when one was asked for. */
  url?: string;
  stop(): Promise<void>;
}

/**
 * The daemon's peer side: the peer server when `listen` is given, and the replication of every
 * peer location (whenever the home has keys). Throws EBUSY (address in use), EIO (keys).
 */
export async function startPeerServices(home: Home, opts: { listen?: { host: string; port: number }; log: Logger; changed: () => void }): Promise<PeerServices> {
  let server: PeerServer | undefined;
  const keys = opts.listen ? await home.keys() : readKeys(home.dir);
  if (opts.listen && keys) {
    const store = new PeerStore(home.db);
    const peers: PeerDirectory = { pairedIds: () => store.list().map((p) => p.id), touch: (id) => store.touch(id) };
    const self = { id: keys.id, name: home.config.name };
    const pairing: PairingService = { accept: (fp, body, source) => acceptPairing(home.db, self, fp, body, source) };
    server = await startPeerServer({
      ...opts.listen,
      keys,
      name: home.config.name,
      log: opts.log,
      peers,
      pairing,
      // vdfs's own state folders (home, cache, staging) are never served, even inside a shared location.
      source: new ServeIndex(home.db, home.statePaths),
      requestTimeoutMs: home.config['peer.requestTimeout'] * 1000,
    });
    setMeta(home.db, SERVER_KEY, JSON.stringify({ url: server.url, pid: process.pid }));
  }
  const replication = keys ? new PeerReplication(home, keys, opts.log, opts.changed) : undefined;
  replication?.start();
  return {
    url: server?.url,
    async stop() {
      replication?.stop();
      await server?.close();
      try {
        const cur = getMeta(home.db, SERVER_KEY);
        if (cur && (JSON.parse(cur) as { pid: number }).pid === process.pid) deleteMeta(home.db, SERVER_KEY);
      } catch (err) {
        // The index may be closing: a stale address whose pid is gone is ignored by its readers.
        noteSwallowed(opts.log, 'peer server: clearing its address at stop', err, {}, 'debug');
      }
    },
  };
}

/** The URL of this home's running peer server. Throws EHOSTDOWN when none runs. */
export function runningServerUrl(home: Home): string {
  const cur = getMeta(home.db, SERVER_KEY);
  if (cur) {
    const { url, pid } = JSON.parse(cur) as { url: string; pid: number };
    try {
      process.kill(pid, 0);
      return url;
    } catch {
      // its daemon is gone
    }
  }
  throw new FsError('EHOSTDOWN', 'the peer server is not running: start it with `vdfs serve --peer [HOST:]PORT` (or `vdfs mount DIR --peer PORT`), or give --url');
}
