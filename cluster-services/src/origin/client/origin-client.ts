import type { Readable } from 'node:stream';
import type { Digest, Metainfo } from '@krill/lib';

/**
 * The only caller of the origin HTTP API. Blobs live on their owners: the top `replicas` nodes
 * of the rendezvous hash ring for the digest. Uploads go to the first owner and fail over to the
 * next on a network error or 5xx; reads try the owners, then every other origin.
 *
 * `namespace` is the repository the blob belongs to; origins use it to route to a backend for
 * write-back and for fetch on miss. Safe to call concurrently. Errors: NotFound
 * (ERR_BLOB_NOT_FOUND) when no origin and no backend has the blob, InvalidArgument
 * (ERR_DIGEST_MISMATCH, ERR_DIGEST_INVALID) for bad input, Unauthenticated when an upstream
 * registry refused credentials, Unavailable (ERR_ORIGIN_UNAVAILABLE) when every origin failed.
 */
export interface BlobSource {
  /** Opens the blob's bytes again from the start; called once per upload attempt. */
  open(): Promise<Readable> | Readable;
  size: number;
}

export interface OriginClient {
  /** The owners of `digest`, best first. */
  owners(digest: Digest): string[];
  /** Size of the blob on the origins, fetching it from the namespace's backend on a miss. */
  stat(namespace: string, digest: Digest, signal?: AbortSignal): Promise<{ size: number }>;
  /**
   * Streams the blob, or the inclusive byte range, from the first origin that has it (fetching it
   * from the backend on a miss). If that origin breaks off mid-body, the rest is read with a
   * Range request from another origin that holds the blob, so `body` errors only when none can.
   * The caller consumes or destroys `body`.
   */
  download(namespace: string, digest: Digest, options?: { range?: { start: number; end: number }; signal?: AbortSignal }): Promise<{ size: number; body: Readable }>;
  /**
   * The origin that holds the blob (the first that answers, fetching it from the namespace's
   * backend on a miss as `stat` does) and its size: where a reader may be sent to fetch it. Its
   * errors are those of `stat`.
   */
  locate(namespace: string, digest: Digest, signal?: AbortSignal): Promise<{ origin: string; size: number }>;
  /**
   * The peer endpoint of one origin (`origin` is its URL, as in the ring): where agents dial it
   * for pieces. NotFound (ERR_PEER_NOT_CONFIGURED) when it runs without one, Unavailable when it
   * does not answer.
   */
  peerEndpoint(origin: string, signal?: AbortSignal): Promise<{ ip: string; port: number; peerId: string }>;
  /** Reads a small blob (a manifest) into memory; InvalidArgument ERR_SIZE_INVALID above `maxBytes`. */
  fetchBytes(namespace: string, digest: Digest, maxBytes: number, signal?: AbortSignal): Promise<Buffer>;
  /**
   * Uploads the blob to its first healthy owner, which verifies it, replicates it to the other
   * owners and queues its write-back. Uploading a blob that exists succeeds.
   */
  upload(namespace: string, digest: Digest, source: BlobSource, signal?: AbortSignal): Promise<void>;
  /** The blob's metainfo (piece length and piece hashes). */
  metainfo(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Metainfo>;
  close(): Promise<void>;
}
