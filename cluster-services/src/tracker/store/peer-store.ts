import type { Digest } from '@krill/lib';

/** One peer of a blob's swarm as the tracker knows it. */
export interface PeerInfo {
  /** 20-byte peer id, hex. */
  peerId: string;
  ip: string;
  port: number;
  /** Holds the whole blob. */
  complete: boolean;
  /** A dedicated seeder (an origin). */
  origin: boolean;
}

/**
 * Who has which blob, in memory with a TTL: a peer that stops announcing drops out after
 * `ttlMs`. Several trackers split the digests between them by rendezvous hashing, so no shared
 * database is needed. Synchronous; owned by one event loop.
 */
export interface PeerStore {
  /** Records (or refreshes) a peer of a blob's swarm. */
  upsert(digest: Digest, peer: PeerInfo): void;
  /**
   * Peers to hand to `except`: seeders and origins first (shuffled), then a random sample of
   * incomplete peers, at most `limit`, never `except` itself.
   */
  handout(digest: Digest, except: string, limit: number): PeerInfo[];
  /** Blobs and peers tracked, for metrics. */
  size(): { blobs: number; peers: number };
}

interface Entry extends PeerInfo {
  expires: number;
}

export function createPeerStore(o: { ttlMs: number; now?: () => number; random?: () => number }): PeerStore {
  const now = o.now ?? Date.now;
  const random = o.random ?? Math.random;
  const swarms = new Map<Digest, Map<string, Entry>>();
  let peers = 0;
  // Expired entries are dropped lazily when their swarm is read, and by a sweep every so often.
  let lastSweep = now();

  function prune(digest: Digest, swarm: Map<string, Entry>, t: number): void {
    for (const [id, e] of swarm) {
      if (e.expires <= t) {
        swarm.delete(id);
        peers--;
      }
    }
    if (swarm.size === 0) swarms.delete(digest);
  }

  function shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }

  return {
    upsert(digest, peer) {
      const t = now();
      if (t - lastSweep > o.ttlMs) {
        lastSweep = t;
        for (const [d, s] of swarms) prune(d, s, t);
      }
      let swarm = swarms.get(digest);
      if (!swarm) swarms.set(digest, (swarm = new Map()));
      if (!swarm.has(peer.peerId)) peers++;
      swarm.set(peer.peerId, { ...peer, expires: t + o.ttlMs });
    },
    handout(digest, except, limit) {
      const swarm = swarms.get(digest);
      if (!swarm) return [];
      prune(digest, swarm, now());
      const seeders: PeerInfo[] = [];
      const leechers: PeerInfo[] = [];
      for (const e of swarm.values()) {
        if (e.peerId === except) continue;
        const { expires: _e, ...info } = e;
        void _e;
        (e.complete || e.origin ? seeders : leechers).push(info);
      }
      return [...shuffle(seeders), ...shuffle(leechers)].slice(0, limit);
    },
    size: () => ({ blobs: swarms.size, peers }),
  };
}
