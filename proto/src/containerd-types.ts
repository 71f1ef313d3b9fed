import type { FieldMask, Timestamp } from './message-types.js';

/**
 * containerd's content, images and leases messages and the shared `containerd.types`, as the
 * loader decodes them (see message-types.ts; requests are written as `Input<...>`). Grouped in
 * namespaces named like the Go packages (`content.Info`, `types.Descriptor`), because the
 * services reuse names (`Info`, `Status`) that the CRI has too. Every call needs
 * containerdMetadata({ namespace }); the errors named are the gRPC codes containerd answers.
 */

/** `containerd.types`. */
export declare namespace types {
  /** An OCI descriptor. */
  interface Descriptor {
    mediaType: string;
    /** `sha256:<64 hex>`. */
    digest: string;
    size: number;
    annotations: Record<string, string>;
  }

  /** A mount in the shape of mount(2). */
  interface Mount {
    /** e.g. `bind`, `overlay`. */
    type: string;
    source: string;
    target: string;
    options: string[];
  }

  interface Platform {
    os: string;
    architecture: string;
    variant: string;
    /** containerd 2.x; older daemons leave it empty. */
    osVersion: string;
  }
}

/** `containerd.services.content.v1`. */
export declare namespace content {
  /** A committed blob. */
  interface Info {
    digest: string;
    size: number;
    createdAt: Timestamp | null;
    updatedAt: Timestamp | null;
    /** e.g. `containerd.io/gc.ref.content.config`, `containerd.io/uncompressed`. */
    labels: Record<string, string>;
  }

  /** Info: NOT_FOUND when the blob is absent. */
  interface InfoRequest {
    digest: string;
  }

  interface InfoResponse {
    info: Info | null;
  }

  /** Update: `info` must be set (1.7/2.x daemons crash without it); mask `labels.<key>`. */
  interface UpdateRequest {
    info: Info | null;
    updateMask: FieldMask | null;
  }

  interface UpdateResponse {
    info: Info | null;
  }

  /** List (server stream): blobs matching any filter, all without filters. */
  interface ListContentRequest {
    filters: string[];
  }

  interface ListContentResponse {
    info: Info[];
  }

  /** Delete: NOT_FOUND when absent; answers Empty. */
  interface DeleteContentRequest {
    digest: string;
  }

  /** Read (server stream): `size` 0 reads to the end. */
  interface ReadContentRequest {
    digest: string;
    offset: number;
    size: number;
  }

  interface ReadContentResponse {
    offset: number;
    data: Buffer;
  }

  /** An ingest in progress. */
  interface Status {
    startedAt: Timestamp | null;
    updatedAt: Timestamp | null;
    ref: string;
    offset: number;
    total: number;
    expected: string;
  }

  /** Status: NOT_FOUND when no ingest has this ref. */
  interface StatusRequest {
    ref: string;
  }

  interface StatusResponse {
    status: Status | null;
  }

  interface ListStatusesRequest {
    filters: string[];
  }

  interface ListStatusesResponse {
    statuses: Status[];
  }

  type WriteAction = 'STAT' | 'WRITE' | 'COMMIT';

  /**
   * One message of a Write stream (bidirectional; every request gets a response, and COMMIT's
   * response arrives twice from containerd 1.6 to 2.1). The first message must carry `ref`.
   * The stream fails with ALREADY_EXISTS at once when `expected` is already committed,
   * OUT_OF_RANGE when `offset` is not the current offset, UNAVAILABLE when another stream
   * holds the ref, FAILED_PRECONDITION when COMMIT's size or digest do not match.
   */
  interface WriteContentRequest {
    action: WriteAction;
    ref: string;
    total: number;
    expected: string;
    offset: number;
    data: Buffer;
    /** Set on the blob at COMMIT. */
    labels: Record<string, string>;
  }

  interface WriteContentResponse {
    action: WriteAction;
    startedAt: Timestamp | null;
    updatedAt: Timestamp | null;
    /** Bytes written so far: where to resume. */
    offset: number;
    total: number;
    /** Always set on COMMIT. */
    digest: string;
  }

  /** Abort: answers Empty. */
  interface AbortRequest {
    ref: string;
  }
}

/** `containerd.services.images.v1`. */
export declare namespace images {
  /** An image record: a name for a target descriptor. */
  interface Image {
    name: string;
    /** e.g. `io.cri-containerd.image=managed`. */
    labels: Record<string, string>;
    /** Must be set in requests (1.7/2.x daemons crash without it). */
    target: types.Descriptor | null;
    createdAt: Timestamp | null;
    updatedAt: Timestamp | null;
  }

  /** Get: NOT_FOUND for an unknown name. */
  interface GetImageRequest {
    name: string;
  }

  interface GetImageResponse {
    image: Image | null;
  }

  interface ListImagesRequest {
    filters: string[];
  }

  interface ListImagesResponse {
    images: Image[];
  }

  /** Create: ALREADY_EXISTS when the name is taken. */
  interface CreateImageRequest {
    image: Image | null;
    /** containerd 1.7+. */
    sourceDateEpoch: Timestamp | null;
  }

  interface CreateImageResponse {
    image: Image | null;
  }

  /** Update: NOT_FOUND for an unknown name; mask paths `target`, `labels.<key>`... */
  interface UpdateImageRequest {
    image: Image | null;
    updateMask: FieldMask | null;
    sourceDateEpoch: Timestamp | null;
  }

  interface UpdateImageResponse {
    image: Image | null;
  }

  /** Delete: NOT_FOUND for an unknown name (or, 2.x, a target that does not match); answers Empty. */
  interface DeleteImageRequest {
    name: string;
    /** Collect garbage before answering. */
    sync: boolean;
    /** containerd 2.x. */
    target: types.Descriptor | null;
  }
}

/** `containerd.services.leases.v1`. */
export declare namespace leases {
  interface Lease {
    id: string;
    createdAt: Timestamp | null;
    /** e.g. `containerd.io/gc.expire` (RFC 3339). */
    labels: Record<string, string>;
  }

  /** Create: an empty id lets containerd choose one; ALREADY_EXISTS for a taken id. */
  interface CreateRequest {
    id: string;
    labels: Record<string, string>;
  }

  interface CreateResponse {
    lease: Lease | null;
  }

  /** Delete: NOT_FOUND for an unknown id; answers Empty. */
  interface DeleteRequest {
    id: string;
    /** Collect garbage before answering. */
    sync: boolean;
  }

  interface ListRequest {
    filters: string[];
  }

  interface ListResponse {
    leases: Lease[];
  }

  interface Resource {
    id: string;
    /** `content`, `ingests` or `snapshots/<snapshotter>`. */
    type: string;
  }

  /** AddResource / DeleteResource: `resource` must be set (1.7/2.x crash without it); Empty. */
  interface AddResourceRequest {
    id: string;
    resource: Resource | null;
  }

  interface DeleteResourceRequest {
    id: string;
    resource: Resource | null;
  }

  interface ListResourcesRequest {
    id: string;
  }

  interface ListResourcesResponse {
    resources: Resource[];
  }
}
