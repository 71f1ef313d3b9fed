import type { Readable } from 'node:stream';
import type { Digest, Metainfo } from '@krill/lib';

/**
 * Durable storage behind the origins: where uploaded blobs are written back and where a blob
 * missing from every origin is fetched from. Blobs are addressed by (namespace, digest); the
 * namespace is the repository (`team/app`, or `upstream.local/team/app` for pull-through).
 *
 * Every method is safe to call concurrently. Errors are krill domain errors:
 * NotFound (ERR_BACKEND_BLOB_NOT_FOUND) for a missing blob, FailedPrecondition
 * (ERR_BACKEND_READ_ONLY) for a write to a read-only backend, Unauthenticated for credentials
 * the storage refused, Unavailable for anything transient (network, 5xx, throttling).
 */
export interface BackendBlobInfo {
  size: number;
}

export interface BlobStatter {
  /** The blob's size. NotFound when absent. */
  stat(namespace: string, digest: Digest, signal?: AbortSignal): Promise<BackendBlobInfo>;
}

export interface BlobDownloader {
  /**
   * Opens the blob for reading. NotFound when absent. The caller consumes or destroys the
   * stream; the bytes are not verified here (the origin verifies before it stores).
   */
  download(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Readable>;
}

export interface BlobUploader {
  /**
   * Stores exactly `size` bytes read from `body` under the digest. Idempotent: uploading a blob
   * that exists succeeds. A partial upload never becomes visible under the digest.
   * A body of another length is InvalidArgument ERR_SIZE_INVALID, and bytes that do not hash to
   * the digest ERR_DIGEST_MISMATCH (fs and s3 check both before the blob can appear). The backend
   * consumes or destroys `body` in every outcome, including when the blob already exists.
   */
  upload(namespace: string, digest: Digest, body: Readable, size: number, signal?: AbortSignal): Promise<void>;
}

export interface ListPage {
  digests: Digest[];
  /** Opaque continuation; absent on the last page. */
  cursor?: string;
}

export interface BlobLister {
  /** Lists stored digests in a stable order, `limit` at a time (default 1000). */
  list(options?: { limit?: number; cursor?: string; signal?: AbortSignal }): Promise<ListPage>;
}

/**
 * A blob's metainfo kept beside it in the backend (a sidecar), written by the origin on
 * write-back, so that an origin fetching the blob on a miss knows every piece's hash before the
 * bytes arrive and can verify and serve each piece as it lands instead of after the whole blob.
 * Optional: backends that cannot keep one (http, registry) leave both methods out, and a blob
 * without a sidecar is fetched whole.
 */
export interface MetainfoSidecar {
  /** Stores the sidecar of a blob, replacing any. FailedPrecondition ERR_BACKEND_READ_ONLY where read-only. */
  putMetainfo(namespace: string, digest: Digest, metainfo: Metainfo, signal?: AbortSignal): Promise<void>;
  /**
   * The sidecar as stored, or undefined when there is none or it does not parse: a missing
   * sidecar is not an error. It is not checked against the blob here; the caller verifies every
   * piece against it and the whole blob against its digest.
   */
  getMetainfo(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Metainfo | undefined>;
}

export interface Backend extends BlobStatter, BlobDownloader, BlobUploader, BlobLister, Partial<MetainfoSidecar> {
  /** The backend's kind as configured: `fs`, `s3`, `http`, `registry`. */
  readonly kind: string;
  /** True for backends that cannot take uploads (http, registry). */
  readonly readOnly: boolean;
  /** Releases connections and handles. */
  close(): Promise<void>;
}

/** A backend chosen by namespace: an ordered list of rules, first match wins. */
export interface BackendRouter {
  /** The backend for `namespace`; NotFound (ERR_BACKEND_NO_ROUTE) when no rule matches. */
  route(namespace: string): Backend;
  /** Like route, but undefined when nothing matches. */
  tryRoute(namespace: string): Backend | undefined;
  close(): Promise<void>;
}
