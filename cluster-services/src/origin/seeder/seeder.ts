import type { Digest, Metainfo } from '@krill/lib';

/** Where agents reach an origin's seeder: what `GET /peer` answers. */
export interface PeerEndpoint {
  /** The advertised IPv4 address. */
  ip: string;
  port: number;
  /** The peer id in the wire handshake, 40 hex digits. */
  peerId: string;
}

/**
 * An origin's P2P seeder: a peer endpoint that seeds every blob the origin holds or can fetch
 * (the issue: "origins always seed what they hold and fetch a missing blob from their backend
 * when asked, serving its pieces as they arrive").
 *
 * A dialer's handshake for a digest opens a seed swarm on demand, in the handshake's namespace:
 * - a blob in the store is served from the store's file, held (`BlobStore.hold`) so that
 *   eviction cannot remove it while it is seeded, with the store's metainfo;
 * - a blob missing from the store whose backend keeps a metainfo sidecar is streamed from the
 *   backend into a scratch file piece by piece; every piece is verified against the sidecar's
 *   SHA-256 before it is written, announced or served, and peers get each piece as soon as it
 *   is verified. When all are in, the store takes the blob (verifying the whole digest) and the
 *   swarm goes on seeding;
 * - a blob without a sidecar (an upstream registry backend, or one written back before sidecars
 *   existed) is fetched whole through the miss fetcher first: nothing is served before the whole
 *   blob is in the store. The handshake is answered only within MISS_ANSWER_MS (below the
 *   dialer's 5 s handshake timeout); a slower fetch goes on in the background and the dialer is
 *   told BLOB_UNKNOWN, to come back (the tracker, or a retry, brings it back to a stored blob);
 * - anything else (no backend has it, a bad namespace) is answered BLOB_UNKNOWN.
 * Downloads of a blob are shared with the HTTP API's fetch on miss, so a blob is read from the
 * backend once however it is asked for.
 *
 * All seed swarms share one egress token bucket. A seed swarm that nobody connected to or was
 * served by for `idleMs` is closed and its hold released. While a swarm is open and trackers are
 * configured, it is announced as `{ complete: true, origin: true }` at the interval the tracker
 * returns. Metrics: `krill_origin_seed_swarms` (open), `krill_origin_p2p_served_bytes_total`.
 *
 * Safe to call concurrently.
 */
export interface OriginSeeder {
  readonly endpoint: PeerEndpoint;
  /**
   * The metainfo of a blob in `namespace`: from the store or the open seed swarm, else from the
   * backend's sidecar (opening a seed swarm that streams the blob in, so peers told about this
   * metainfo find its pieces here), else after fetching the whole blob. NotFound
   * (ERR_BLOB_NOT_FOUND) when no backend has it.
   */
  metainfo(namespace: string, digest: Digest): Promise<Metainfo>;
  /** Seed swarms open now. */
  openSwarms(): number;
  /** Closes every seed swarm and the listener, and releases every hold. */
  close(): Promise<void>;
}
