import type { Digest, Metainfo } from '@krill/lib';
import type { PeerInfo } from '../store/peer-store.js';

export interface Announce {
  digest: Digest;
  namespace: string;
  peerId: string;
  ip: string;
  port: number;
  complete: boolean;
  origin?: boolean;
}

/**
 * The only caller of the tracker API. A digest belongs to one tracker, chosen by rendezvous
 * hashing over the tracker URLs, so each tracker's in-memory store sees the whole swarm of its
 * digests; when that tracker fails the client moves to the next in rendezvous order.
 * Errors: InvalidArgument (ERR_PEER_INVALID, ERR_DIGEST_INVALID), Unavailable
 * (ERR_TRACKER_UNAVAILABLE) when no tracker answered. Safe to call concurrently.
 */
export interface TrackerClient {
  announce(a: Announce, signal?: AbortSignal): Promise<{ peers: PeerInfo[]; intervalMs: number }>;
  metainfo(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Metainfo>;
  close(): Promise<void>;
}
