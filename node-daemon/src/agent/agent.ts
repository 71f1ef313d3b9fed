import type { Readable } from 'node:stream';
import type { Digest } from '@krill/lib';

/** Where a blob's bytes came from, in bytes of verified pieces that were new to this agent. */
export interface BytesBySource {
  /** Other agents, over the peer wire. */
  peers: number;
  /** Origins, over the peer wire. */
  origins: number;
  /** Origins over HTTP, piece by piece: the path taken when no peer connection could be made. */
  originHttp: number;
}

/** One blob as an agent holds it: whole in the cache, or being downloaded. */
export interface BlobHandle {
  digest: Digest;
  size: number;
  /**
   * The blob's bytes, or the inclusive range, in order; bytes are delivered as soon as the
   * pieces holding them are verified, so a reader never waits for the whole blob. The stream
   * errors with the download's error if it fails. The caller consumes or destroys it. With
   * `pooled`, whole pieces come in buffers of lib's piecePool that the caller gives back
   * (piecePool.give) once it is done with each; any chunk may be given back, a slice is ignored.
   */
  read(range?: { start: number; end: number }, options?: { pooled?: boolean }): Readable;
  /** Resolves once the whole blob is verified and in the cache; rejects if the download fails. */
  done: Promise<void>;
  /** What this download received, by source (zero for a blob that was already cached). */
  received(): BytesBySource;
  /** Ends this use of the blob; the cache may evict it once nobody uses it and seeding ended. */
  release(): void;
  /**
   * Ends this use like release, and stops the download when no other use of it is left and it
   * is not complete (a cancelled pull): its verified pieces stay in the cache, so a later open
   * resumes it. Downloads started through other paths (a registry HEAD) are kept by their own
   * uses; only abandoning the last use stops one.
   */
  abandon(): void;
}

/**
 * The P2P agent core of a node: fetches blobs by digest from peers and origins in SHA-256
 * verified pieces, keeps them in a disk cache, and seeds what it holds.
 *
 * `open` resolves once the blob's metainfo is known and room is reserved, before any piece has
 * arrived; concurrent opens of one digest share one download. The metainfo comes from the
 * trackers, or from the origins when no tracker answers. Peers come from the trackers and, in
 * any case, the blob's owner origins are dialled directly; when no peer connection can be made
 * at all, pieces are read from the origins over HTTP. A download that makes no progress for
 * the configured stall timeout fails.
 *
 * Errors: NotFound (ERR_BLOB_NOT_FOUND) when no origin has the blob, Unavailable
 * (ERR_AGENT_UNAVAILABLE naming what was tried) when neither trackers nor origins answer or
 * the download stalls, FailedPrecondition ERR_CACHE_FULL, Canceled when `signal` aborts.
 * Safe to call concurrently.
 */
export interface Agent {
  open(namespace: string, digest: Digest, signal?: AbortSignal): Promise<BlobHandle>;
  /** The address other peers reach this agent's peer endpoint at. */
  readonly peerAddress: { ip: string; port: number };
  /** Totals since start, for metrics. */
  stats(): { received: BytesBySource; served: number; downloads: number; active: number };
  close(): Promise<void>;
}
