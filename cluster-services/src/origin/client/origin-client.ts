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
 * registry refused credentials, Unavailable (ERR_ORIGIN_UNAVAILABLE) when every origin failed
 * or none is known. With DNS membership the ring follows the origins' addresses; each call uses
 * the ring as it was when the call began.
 */
export interface BlobSource {
  /** Opens the blob's bytes again from the start; called once per upload attempt. */
  open(): Promise<Readable> | Readable;
  size: number;
}

/** An upload session on one origin (see OriginClient.openUpload). */
export interface RemoteUpload {
  origin: string;
  id: string;
}

export interface OriginClient {
  /** The owners of `digest`, best first, on the ring as it is now; [] while no origin is known (DNS before its first answer). */
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
  /**
   * Opens an upload session for a blob whose digest is not known yet, on the first origin that
   * answers, in an order spread by `key` (so sessions spread over the origins). Unavailable
   * (ERR_ORIGIN_UNAVAILABLE) when none does.
   */
  openUpload(namespace: string, key: string, signal?: AbortSignal): Promise<RemoteUpload>;
  /**
   * Streams `body` into the session at `offset`, all or nothing: if the body breaks off (or is
   * destroyed by the caller) the origin cuts the upload back to `offset` and the call fails with
   * InvalidArgument ERR_UPLOAD_INVALID or Unavailable. ERR_UPLOAD_OFFSET when `offset` is not
   * what the origin holds; Unavailable when the origin fails, after which the session's state is
   * unknown. Returns the session's new size. One call per session at a time; no failover.
   */
  appendUpload(upload: RemoteUpload, offset: number, body: Readable, signal?: AbortSignal): Promise<number>;
  /**
   * Verifies the session's bytes against `digest` and stores the blob on that origin, which then
   * replicates it to the blob's owners and queues its write-back, as `upload` does. InvalidArgument
   * ERR_DIGEST_MISMATCH (the session is discarded), Unavailable when the origin fails.
   */
  commitUpload(upload: RemoteUpload, namespace: string, digest: Digest, signal?: AbortSignal): Promise<void>;
  /** Drops the session; errors are ignored (the origin sweeps abandoned uploads anyway). */
  abortUpload(upload: RemoteUpload): Promise<void>;
  /** The blob's metainfo (piece length and piece hashes). */
  metainfo(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Metainfo>;
  close(): Promise<void>;
}
