import type { Digest } from '@krill/lib';

/** An OCI descriptor as containerd's API carries it. */
export interface BlobDescriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
}

/** A containerd lease: everything written under it survives garbage collection until it is deleted. */
export interface Lease {
  id: string;
  /** Deletes the lease; what no image references is then collected. Safe to call twice. */
  delete(): Promise<void>;
}

/**
 * What krill does with containerd, over its gRPC API only (never its files), always in one
 * namespace (`k8s.io` for the CRI). Every request sets each nested message it sends: containerd
 * 1.7 and 2.x crash on a request that omits one (reference/containerd-compat.md §1).
 * Errors: gRPC errors are turned into KrillErrors here (Unavailable when containerd cannot be
 * reached, NotFound, AlreadyExists, Canceled when a signal aborts, Internal otherwise) with the
 * call named. Safe to call concurrently.
 */
export interface Containerd {
  readonly namespace: string;
  /** A new lease that expires by itself after `expireMs`, in case krill dies before deleting it. */
  createLease(expireMs: number): Promise<Lease>;
  /** Whether the content store holds the blob (committed, in this namespace). */
  hasBlob(digest: Digest): Promise<boolean>;
  /**
   * Writes a blob from `body` (exactly `desc.size` bytes, in order) with content.Write under the
   * lease, committing it with `labels` once the last byte is in, and containerd checks size and
   * digest. Resolves `exists` without reading `body` when the blob is already there (its labels
   * are then added with setLabels). A partial ingest is aborted on failure. The caller owns `body`;
   * with `recycle` its chunks are piecePool buffers, given back once copied.
   */
  writeBlob(o: { lease: Lease; desc: BlobDescriptor; body: AsyncIterable<Buffer>; labels: Record<string, string>; signal?: AbortSignal; recycle?: boolean }): Promise<'written' | 'exists'>;
  /** Adds or replaces these labels of a committed blob, leaving its others alone. */
  setLabels(digest: Digest, labels: Record<string, string>): Promise<void>;
  /**
   * Makes sure a blob written now or by a concurrent pull is held by `lease` too (leases name
   * resources by id, so this works before the blob exists).
   */
  holdBlob(lease: Lease, digest: Digest): Promise<void>;
  /**
   * Unpacks one layer onto snapshot `parent` (undefined for the bottom layer) as containerd's
   * own unpacker does: nothing when snapshot `chainId` exists already (it is then added to the
   * lease), otherwise Prepare, diff Apply (its result checked against `diffId`) and Commit as
   * `chainId`, under the lease; a snapshot another pull committed first counts as done. Sets the
   * layer's `containerd.io/uncompressed` label.
   */
  applyLayer(o: { lease: Lease; snapshotter: string; layer: BlobDescriptor; diffId: Digest; chainId: Digest; parent?: Digest; signal?: AbortSignal }): Promise<void>;
  /** Creates image record `name` → target, or updates its target and these labels if it exists. */
  putImage(o: { lease?: Lease; name: string; target: BlobDescriptor; labels: Record<string, string> }): Promise<void>;
  /** Image record names of this namespace (for tests and cleanup). */
  listImages(): Promise<string[]>;
  /** IDs of this namespace's leases. */
  listLeases(): Promise<string[]>;
  close(): void;
}

/** containerd's CRI, for what krill reads from it (not the calls it forwards). */
export interface ContainerdCri {
  /** The snapshotter the CRI unpacks images into (1.6/1.7 report it; 2.x via ImageFsInfo). */
  snapshotter(): Promise<string>;
  /**
   * The sandbox (pause) image containerd's CRI is configured with, as written in its config
   * (1.6 and 1.7 report it; undefined on 2.x, whose CRI pins it itself).
   */
  sandboxImage(): Promise<string | undefined>;
  /** The CRI's image id for `ref`, or undefined while containerd's CRI does not see it. */
  imageId(ref: string): Promise<string | undefined>;
  /** The image's size as the CRI reports it (0 when it does not know the image). */
  imageSize(ref: string): Promise<number>;
  /** Polls imageId until it equals `id` (CRI sees images through events), or fails after `timeoutMs`. */
  waitVisible(ref: string, id: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  close(): void;
}
