import type { Digest, Metainfo } from '@krill/lib';

/** A blob the cache holds whole and verified. */
export interface CachedBlob {
  digest: Digest;
  /** The verified blob file; stays readable while the blob is acquired. */
  path: string;
  metainfo: Metainfo;
}

/** Room reserved for a blob being downloaded: the piece file and its status file live at `dataPath`. */
export interface PartialBlob {
  digest: Digest;
  dataPath: string;
}

/**
 * The agent's disk cache: whole, verified blobs under a byte capacity with LRU eviction, and the
 * partial blobs being assembled (which count against the capacity from the moment they are
 * reserved, since their piece files are pre-sized). A blob that is acquired (being read, being
 * downloaded or being seeded) is never evicted. Each blob keeps its metainfo beside it, so a
 * partial one resumes after a restart and a whole one can be seeded again.
 *
 * Synchronous bookkeeping owned by one event loop; the async methods are safe to call
 * concurrently for different digests. Errors: ResourceExhausted is not a krill category, so a
 * reservation that cannot fit even after evicting everything unused is FailedPrecondition
 * ERR_CACHE_FULL (the caller then fails the pull rather than overfill the disk).
 */
export interface BlobCache {
  /** The whole blob, or undefined; a hit counts as a use for LRU. */
  lookup(digest: Digest): CachedBlob | undefined;
  /** A partial blob left by an earlier run (or this one) with its metainfo, or undefined. */
  partial(digest: Digest): { dataPath: string; metainfo: Metainfo } | undefined;
  /**
   * Reserves `metainfo.length` bytes for a new (or resumed) partial blob, evicting unused whole
   * blobs least recently used first. The reservation is acquired once; release it when done.
   */
  reserve(metainfo: Metainfo): Promise<PartialBlob>;
  /**
   * Moves a partial blob, every piece verified and the whole digest checked by the caller, into
   * place as a whole blob. Open file handles on the data file stay valid across the move.
   */
  commit(digest: Digest): Promise<CachedBlob>;
  /** Deletes a partial blob (a download that cannot finish, or whose bytes proved wrong). */
  discard(digest: Digest): Promise<void>;
  /** Pins a blob (whole or partial) against eviction; each acquire needs one release. */
  acquire(digest: Digest): void;
  release(digest: Digest): void;
  /** Bytes held (whole + reserved), the capacity, and counts, for metrics. */
  usage(): { bytes: number; capacity: number; blobs: number; partial: number };
}
