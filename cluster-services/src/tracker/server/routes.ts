import type { FastifyInstance } from 'fastify';
import type { Counter } from 'prom-client';
import { InvalidArgumentError, parseDigest, parseRepository, useJsonErrors, type Digest, type Metainfo } from '@krill/lib';
import type { OriginClient } from '../../origin/index.js';
import type { PeerStore } from '../store/peer-store.js';
import type { AnnounceFrame } from '../stream/frames.js';
import type { AnnounceHandler } from '../stream/stream-server.js';
import { createAnnounceEncoder } from './announce-json.js';

const PEER_ID_RE = /^[a-f0-9]{40}$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
/** Metainfo is immutable per digest; this many are kept so a swarm's agents cost one origin call. */
const METAINFO_CACHE = 10_000;

/**
 * The tracker API (only the tracker client calls it):
 * - `POST /announce` `{ digest, namespace, peerId, ip, port, complete, origin }` →
 *   `{ peers: PeerInfo[], intervalMs }`: the caller is recorded, then handed other peers.
 * - `GET /metainfo?namespace=&digest=`: the blob's metainfo, from the origins, cached.
 */
export function registerTrackerRoutes(app: FastifyInstance, d: {
  store: PeerStore; origins: OriginClient; intervalMs: number; announce: AnnounceHandler;
}): void {
  useJsonErrors(app);
  const cache = new Map<string, Metainfo>();
  const encode = createAnnounceEncoder();

  app.post('/announce', async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const digest = parseDigest(String(b['digest'] ?? ''));
    const peerId = String(b['peerId'] ?? '');
    if (!PEER_ID_RE.test(peerId)) throw new InvalidArgumentError(`peerId ${JSON.stringify(b['peerId'])} must be 40 hex characters`, { code: 'ERR_PEER_INVALID' });
    const ip = String(b['ip'] ?? '');
    if (!IPV4_RE.test(ip)) throw new InvalidArgumentError(`ip ${JSON.stringify(b['ip'])} is not an IPv4 address`, { code: 'ERR_PEER_INVALID' });
    const port = Number(b['port']);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`port ${JSON.stringify(b['port'])} is invalid`, { code: 'ERR_PEER_INVALID' });
    const peers = d.announce.json({ id: 0, digest, namespace: String(b['namespace'] ?? ''), peerId, ip, port, complete: b['complete'] === true, origin: b['origin'] === true });
    // fastify sends a Buffer as it is, with its length as content-length.
    return reply.type('application/json; charset=utf-8').send(encode(peers, d.intervalMs));
  });

  app.get('/metainfo', async (req) => {
    const q = req.query as { namespace?: string; digest?: string };
    const digest = parseDigest(q.digest ?? '');
    const namespace = parseRepository(q.namespace ?? '');
    const hit = cache.get(digest);
    if (hit) return hit;
    const m = await d.origins.metainfo(namespace, digest);
    if (cache.size >= METAINFO_CACHE) cache.delete(cache.keys().next().value!);
    cache.set(digest, m);
    return m;
  });
}

const NO_PEERS = { bytes: new Uint8Array(0), offsets: [] as number[] };

/**
 * One announce, from the HTTP route or the announce stream: the namespace is checked, the caller
 * recorded, and a downloader handed peers (a seeder needs nobody: it only waits to be dialled).
 */
export function createAnnounceHandler(d: { store: PeerStore; maxPeers: number; announces: Counter }): AnnounceHandler {
  // Label children made once: looking a label set up on every announce costs a hash of it.
  const announcesBy = { true: d.announces.labels({ complete: 'true' }), false: d.announces.labels({ complete: 'false' }) };
  const record = (a: AnnounceFrame) => {
    parseRepository(a.namespace);
    if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new InvalidArgumentError(`port ${a.port} is invalid`, { code: 'ERR_PEER_INVALID' });
    d.store.upsert(a.digest as Digest, { peerId: a.peerId, ip: a.ip, port: a.port, complete: a.complete, origin: a.origin });
    announcesBy[a.complete ? 'true' : 'false'].inc();
  };
  return {
    json(a) {
      record(a);
      return a.complete ? [] : d.store.handout(a.digest as Digest, a.peerId, d.maxPeers);
    },
    wire(a) {
      record(a);
      return a.complete ? NO_PEERS : d.store.handoutWire(a.digest as Digest, a.peerId, d.maxPeers);
    },
  };
}
