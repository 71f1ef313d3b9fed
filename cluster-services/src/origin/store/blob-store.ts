import type { Readable } from 'node:stream';
import type { Digest, Metainfo } from '@krill/lib';

/**
 * An origin's content-addressed store on local disk. A blob becomes visible only after its
 * SHA-256 has been verified (written to a temporary file, verified, renamed into place), so a
 * partial or corrupt blob is never served, even after a crash. Capacity is in bytes with LRU
 * eviction by last access; a pinned blob (write-back pending) is never evicted.
 *
 * Every method is safe to call concurrently. Errors: NotFound (ERR_BLOB_NOT_FOUND,
 * ERR_UPLOAD_NOT_FOUND), InvalidArgument (ERR_DIGEST_MISMATCH, ERR_UPLOAD_OFFSET,
 * ERR_SIZE_INVALID), FailedPrecondition (ERR_BLOB_PINNED, ERR_UPLOAD_BUSY), Unavailable
 * (ERR_STORE_FULL when pinned blobs leave no room).
 */
export interface BlobInfo {
  size: number;
}

/** A stored blob held open for a reader of its file; see BlobReader.hold. */
export interface BlobHold {
  /** The blob's data file: verified, complete, and unchanging while held. */
  readonly path: string;
  /** Lets the blob go; calling it again does nothing. */
  release(): void;
}

export interface BlobReader {
  /** Size of a stored blob. NotFound when absent. */
  stat(digest: Digest): Promise<BlobInfo>;
  /**
   * Opens a stored blob, optionally a byte range (inclusive `end`), and marks it used for LRU.
   * NotFound when absent. The caller consumes or destroys the stream.
   */
  open(digest: Digest, range?: { start: number; end: number }): Promise<Readable>;
  /**
   * The blob's piece hashes. Computed once, on the first request (concurrent first requests share
   * one computation), and kept beside the blob. NotFound when absent.
   */
  metainfo(digest: Digest): Promise<Metainfo>;
  /**
   * Holds a stored blob for a reader that needs its file rather than a stream (the P2P seeder
   * reads pieces at random for as long as it seeds): until released, the blob is not evicted
   * and `delete` refuses it (FailedPrecondition ERR_BLOB_HELD). Holds are counted, apart from
   * write-back pins. NotFound when absent. The caller must release it.
   */
  hold(digest: Digest): Promise<BlobHold>;
}

export interface BlobWriter {
  /**
   * Streams `body` into a temporary file, verifies it against `digest` (and `size` when given)
   * and renames it into place. An existing blob is kept and the body drained. On mismatch the
   * temporary file is removed and InvalidArgument (ERR_DIGEST_MISMATCH / ERR_SIZE_INVALID) thrown.
   * The bytes are fsynced before the rename, so a blob that is visible survives a power cut.
   */
  put(digest: Digest, body: Readable, options?: { size?: number; pin?: boolean; signal?: AbortSignal }): Promise<BlobInfo>;
  /**
   * Takes in a complete file of `metainfo.length` bytes that the caller has already verified to
   * hash to `metainfo.digest` (an origin's copy assembled from pieces each checked against the
   * metainfo and hashed whole as they arrived) by renaming it into place, with the metainfo
   * beside it: nothing is copied or hashed again. The file must be on the store's filesystem;
   * it is fsynced first. When the blob is stored already, that copy is kept (and `path` may be
   * removed).
   */
  adopt(path: string, metainfo: Metainfo, options?: { pin?: boolean }): Promise<BlobInfo>;
  /**
   * Removes a blob; NotFound when absent; FailedPrecondition ERR_BLOB_PINNED when pinned,
   * ERR_BLOB_HELD when held.
   */
  delete(digest: Digest): Promise<void>;
  /** Marks a blob as not evictable (write-back pending) or evictable again. NotFound when absent. */
  setPinned(digest: Digest, pinned: boolean): Promise<void>;
}

/** Resumable uploads: start, append at an offset, commit with the expected digest. */
export interface UploadStore {
  /** Starts an upload and returns its id (an opaque token safe in a URL path). */
  startUpload(): Promise<string>;
  /** Bytes received so far. NotFound (ERR_UPLOAD_NOT_FOUND) for an unknown id. */
  uploadSize(id: string): Promise<number>;
  /**
   * Appends `body` at `offset`, which must equal the bytes received so far (InvalidArgument
   * ERR_UPLOAD_OFFSET otherwise). Returns the new size. One append or commit per id at a time:
   * another one meanwhile gets FailedPrecondition ERR_UPLOAD_BUSY. A body that breaks off keeps
   * what arrived and the client resumes from `uploadSize`; with `atomic` it is cut back to
   * `offset` instead (InvalidArgument ERR_UPLOAD_INVALID), and a busy upload is waited for (up to
   * ten seconds) rather than refused. Chunks appended in order are hashed as they arrive.
   */
  append(id: string, offset: number, body: Readable, options?: { signal?: AbortSignal; atomic?: boolean }): Promise<number>;
  /**
   * Verifies the upload against `digest` and moves it into the store. On mismatch the upload is
   * removed and InvalidArgument ERR_DIGEST_MISMATCH thrown; nothing becomes visible. The bytes
   * are on disk (fsynced) before the blob becomes visible. The digest comes from the hash kept
   * while the chunks arrived in order, else (after a restart, or a body that broke off midway)
   * from reading the file. Committing a blob that is stored already keeps the stored copy. With
   * `wait`, an upload busy with another request (an abandoned atomic chunk being cut back) is
   * waited for, up to ten seconds, instead of refused.
   */
  commit(id: string, digest: Digest, options?: { pin?: boolean; wait?: boolean }): Promise<BlobInfo>;
  /** Drops an upload, once no request holds it (waiting up to ten seconds); unknown ids are ignored. */
  abort(id: string): Promise<void>;
}

export interface BlobStore extends BlobReader, BlobWriter, UploadStore {
  /** Bytes held by stored blobs. */
  usedBytes(): number;
  close(): Promise<void>;
}
