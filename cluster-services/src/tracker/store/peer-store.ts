import type { Digest } from '@krill/lib';

/** Peers as announce-stream bytes: 27 at each offset. */
export interface WireHandout {
  bytes: Uint8Array;
  offsets: number[];
}

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
 * database is needed. Synchronous; owned by one event loop (not safe to share between threads).
 * An unknown digest is not an error: it is an empty swarm.
 */
export interface PeerStore {
  /** Records (or refreshes) a peer of a blob's swarm; the store keeps its own copy of `peer`. */
  upsert(digest: Digest, peer: PeerInfo): void;
  /**
   * Peers to hand to `except`: seeders and origins first (shuffled), then a random sample of
   * incomplete peers, at most `limit`, never `except` itself and never a peer past its TTL; `[]`
   * for an unknown digest. If there are more seeders than `limit`, a random `limit` of them.
   * Costs O(limit), not O(swarm). The returned objects are the store's own, frozen: a peer's
   * next announce replaces its object rather than changing it.
   */
  handout(digest: Digest, except: string, limit: number): PeerInfo[];
  /**
   * The same handout as each peer's 27 bytes in the announce stream (peer-wire.ts): at each of
   * `offsets` in `bytes`, valid until the next upsert.
   */
  handoutWire(digest: Digest, except: string, limit: number): WireHandout;
  /** Blobs and peers tracked, for metrics; expired peers are dropped first, so they do not count. */
  size(): { blobs: number; peers: number };
}
