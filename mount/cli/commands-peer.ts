import type { Command } from 'commander';
import { FsError } from '../../core/fs-error';
import { parsePeerUrl } from '../../providers/peer/peer-client';
import { runningServerUrl } from '../../app/peer/peer-daemon';
import { PeerStore, type PeerNode } from '../../index/peer-store';
import { inviteCode, pairWith } from '../../app/peer/pairing';
import { clientFor } from '../../app/peer/replicator';
import { shortId, type NodeKeys } from '../../core/node-identity';
import { openHome, type GlobalOpts } from './context';
import { printJson, table } from './output';

const repeatable = (v: string, acc: string[] = []) => [...acc, v];

/** "10m", "2h", "90s", "1d" → milliseconds. Throws EINVAL. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,6})([smhd])$/.exec(text.trim());
  if (!m) throw new FsError('EINVAL', `cannot read ${JSON.stringify(text)} as a duration (e.g. 90s, 10m, 2h, 1d)`);
  const ms = Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  if (ms <= 0 || ms > 7 * 86_400_000) throw new FsError('EINVAL', 'an invitation lasts from 1 second to 7 days');
  return ms;
}

async function probe(p: PeerNode, keys: NodeKeys): Promise<{ online: boolean; latencyMs: number | null }> {
  if (p.addresses.length === 0) return { online: false, latencyMs: null };
  const c = clientFor(p, keys);
  try {
    const t0 = process.hrtime.bigint();
    await c.json('/v1/node', { idleMs: 2000 });
    return { online: true, latencyMs: Number(process.hrtime.bigint() - t0) / 1e6 };
  } catch {
    return { online: false, latencyMs: null };
  } finally {
    c.close();
  }
}

/** vdfs peer id, invite and pair. */
function registerPeerIdentity(peer: Command, g: () => GlobalOpts): void {
  peer
    .command('id')
    .description("this node's id: the SHA-256 of its certificate")
    .option('--short', 'only the short form')
    .option('--json', 'print a JSON document')
    .action(async (o: { short?: boolean; json?: boolean }) => {
      const home = openHome(g());
      const keys = await home.keys();
      if (o.json) return printJson({ id: keys.id, short: shortId(keys.id), name: home.config.name });
      process.stdout.write(o.short ? `${shortId(keys.id)}\n` : `${keys.id}\n`);
    });

  peer
    .command('invite')
    .description("print the one line another node runs to pair with this one (needs this node's peer server running)")
    .option('--share <location>', 'a location of this node the new peer may read (repeatable)', repeatable)
    .option('--expires <duration>', 'how long the invitation lasts', '10m')
    .option('--url <https://host:port>', 'the address the other node reaches this one at (default: where the peer server listens)')
    .option('--json', 'print a JSON document')
    .action(async (o: { share?: string[]; expires: string; url?: string; json?: boolean }) => {
      const home = openHome(g());
      const keys = await home.keys();
      const ttl = parseDuration(o.expires);
      const url = o.url ?? runningServerUrl(home);
      parsePeerUrl(url);
      const { token, expires } = new PeerStore(home.db).createInvite(o.share ?? [], ttl);
      const code = inviteCode(token, keys.id);
      if (o.json) return printJson({ url, code, command: `vdfs peer pair ${url} ${code}`, expires: new Date(expires).toISOString(), shares: o.share ?? [] });
      process.stdout.write(`vdfs peer pair ${url} ${code}\n`);
    });

  peer
    .command('pair <url> <code>')
    .description('pair with the node that printed `vdfs peer pair URL TOKEN#FINGERPRINT`')
    .option('--share <location>', 'a location of this node the inviter may read (repeatable)', repeatable)
    .option('--address <https://host:port>', "where the inviter can reach this node's peer server (repeatable)", repeatable)
    .option('--json', 'print a JSON document')
    .action(async (url: string, code: string, o: { share?: string[]; address?: string[]; json?: boolean }) => {
      const home = openHome(g());
      const keys = await home.keys();
      for (const a of o.address ?? []) parsePeerUrl(a);
      const ans = await pairWith(home.db, keys, home.config.name, url, code, { shares: o.share ?? [], addresses: o.address ?? [] });
      const name = new PeerStore(home.db).byId(ans.id)?.name ?? ans.name;
      if (o.json) return printJson({ id: ans.id, name, shares: ans.shares });
      process.stdout.write(
        `Paired with ${name} (${shortId(ans.id)}).${ans.shares.length ? ` It shares: ${ans.shares.join(', ')} — add one with: vdfs location add NAME peer://${name}/${ans.shares[0]}` : ''}\n`,
      );
    });
}

/** vdfs peer ls: paired nodes, probed unless --no-probe. */
function registerPeerList(peer: Command, g: () => GlobalOpts): void {
  peer
    .command('ls')
    .description('paired nodes: online, last seen, latency, what this node shares with them')
    .option('--json', 'print a JSON document')
    .option('--no-probe', 'do not contact them')
    .action(async (o: { json?: boolean; probe: boolean }) => {
      const home = openHome(g());
      const peers = new PeerStore(home.db).list();
      const keys = o.probe && peers.length > 0 ? await home.keys() : undefined;
      const probes = await Promise.all(peers.map((p) => (keys ? probe(p, keys) : Promise.resolve({ online: false, latencyMs: null }))));
      const rows = peers.map((p, i) => ({
        name: p.name,
        id: p.id,
        short: shortId(p.id),
        addresses: p.addresses,
        shares: p.shares,
        pairedAt: p.pairedAt ? new Date(p.pairedAt).toISOString() : null,
        lastSeen: p.lastSeen ? new Date(p.lastSeen).toISOString() : null,
        online: o.probe ? probes[i].online : null,
        latencyMs: probes[i].latencyMs === null ? null : Math.round(probes[i].latencyMs! * 10) / 10,
      }));
      if (o.json) return printJson(rows);
      if (rows.length === 0) return void process.stdout.write('No peers yet. On one node: vdfs peer invite; run the printed line on the other.\n');
      process.stdout.write(
        table([
          ['NAME', 'ID', 'STATE', 'LATENCY', 'LAST SEEN', 'SHARED', 'ADDRESS'],
          ...rows.map((r) => [
            r.name,
            r.short,
            r.online === null ? '?' : r.online ? 'online' : 'offline',
            r.latencyMs === null ? '-' : `${r.latencyMs} ms`,
            r.lastSeen ?? '-',
            r.shares.join(',') || '-',
            r.addresses[0] ?? '-',
          ]),
        ]),
      );
    });
}

/** vdfs peer rm and share. */
function registerPeerChanges(peer: Command, g: () => GlobalOpts): void {
  peer
    .command('rm <peer>')
    .description('unpair a node at once: its connections are closed, its peer locations removed from this index')
    .action((ref: string) => {
      const home = openHome(g());
      const store = new PeerStore(home.db);
      const p = store.find(ref);
      const locs = home.locations.list().filter((l) => l.ownerNode === p.id);
      for (const l of locs) home.locations.remove(l.name);
      store.remove(p.id);
      process.stdout.write(`Unpaired ${p.name} (${shortId(p.id)})${locs.length ? `; removed its locations ${locs.map((l) => l.name).join(', ')}` : ''}\n`);
    });

  peer
    .command('share <peer> [locations...]')
    .description('set which locations of this node a peer may read (none: share nothing)')
    .action((ref: string, names: string[]) => {
      const home = openHome(g());
      const store = new PeerStore(home.db);
      const p = store.find(ref);
      store.setShares(p.id, names);
      process.stdout.write(`${p.name} may read: ${names.join(', ') || 'nothing'}\n`);
    });
}

/** vdfs peer id|invite|pair|ls|rm|share. */
export function registerPeerCommands(program: Command, g: () => GlobalOpts): void {
  const peer = program.command('peer').description('pair with other nodes and see them');
  registerPeerIdentity(peer, g);
  registerPeerList(peer, g);
  registerPeerChanges(peer, g);
}
