import type { types } from './containerd-types.js';
import type { Any, FieldMask, RpcStatus, Timestamp } from './message-types.js';

/**
 * containerd's snapshots and diff messages (building a rootfs) and the daemon-level
 * introspection, version and namespaces messages, like containerd-types.ts. Snapshot, diff and
 * introspection calls need containerdMetadata({ namespace }); version and namespaces do not.
 */

/** `containerd.services.snapshots.v1`. Every request names its `snapshotter` (e.g. `overlayfs`). */
export declare namespace snapshots {
  /** Prepare: an active snapshot `key` on `parent` (a committed name or ''); ALREADY_EXISTS for a taken key. */
  interface PrepareSnapshotRequest {
    snapshotter: string;
    key: string;
    parent: string;
    /** e.g. `containerd.io/snapshot.ref`. */
    labels: Record<string, string>;
  }

  interface PrepareSnapshotResponse {
    mounts: types.Mount[];
  }

  /** View: a read-only snapshot `key` of `parent`. */
  interface ViewSnapshotRequest {
    snapshotter: string;
    key: string;
    parent: string;
    labels: Record<string, string>;
  }

  interface ViewSnapshotResponse {
    mounts: types.Mount[];
  }

  /** Mounts: NOT_FOUND for an unknown key. */
  interface MountsRequest {
    snapshotter: string;
    key: string;
  }

  interface MountsResponse {
    mounts: types.Mount[];
  }

  /** Commit: active `key` becomes committed `name`; ALREADY_EXISTS when `name` exists; Empty. */
  interface CommitSnapshotRequest {
    snapshotter: string;
    name: string;
    key: string;
    labels: Record<string, string>;
  }

  /** Remove: NOT_FOUND for an unknown key, FAILED_PRECONDITION while it has children; Empty. */
  interface RemoveSnapshotRequest {
    snapshotter: string;
    key: string;
  }

  /** Stat: NOT_FOUND for an unknown key. */
  interface StatSnapshotRequest {
    snapshotter: string;
    key: string;
  }

  type Kind = 'UNKNOWN' | 'VIEW' | 'ACTIVE' | 'COMMITTED';

  interface Info {
    name: string;
    parent: string;
    kind: Kind;
    createdAt: Timestamp | null;
    updatedAt: Timestamp | null;
    labels: Record<string, string>;
  }

  interface StatSnapshotResponse {
    info: Info | null;
  }

  /** Update: `info` must be set (1.7/2.x crash without it); mask `labels.<key>`. */
  interface UpdateSnapshotRequest {
    snapshotter: string;
    info: Info | null;
    updateMask: FieldMask | null;
  }

  interface UpdateSnapshotResponse {
    info: Info | null;
  }

  /** List (server stream): snapshots matching any filter, all without filters. */
  interface ListSnapshotsRequest {
    snapshotter: string;
    filters: string[];
  }

  interface ListSnapshotsResponse {
    info: Info[];
  }

  /** Usage: NOT_FOUND for an unknown key. */
  interface UsageRequest {
    snapshotter: string;
    key: string;
  }

  interface UsageResponse {
    size: number;
    inodes: number;
  }

  /** Cleanup: frees what removed snapshots left; Empty. */
  interface CleanupRequest {
    snapshotter: string;
  }
}

/** `containerd.services.diff.v1`. */
export declare namespace diff {
  /**
   * Apply: reads blob `diff` from the content store (gzip and zstd are decompressed) onto the
   * mounts. `diff` must be set: every containerd version crashes without it.
   */
  interface ApplyRequest {
    diff: types.Descriptor | null;
    mounts: types.Mount[];
    payloads: Record<string, Any>;
    /** containerd 1.7+. */
    syncFs: boolean;
  }

  interface ApplyResponse {
    /** The uncompressed layer: its digest is the diffID. */
    applied: types.Descriptor | null;
  }

  interface DiffRequest {
    left: types.Mount[];
    right: types.Mount[];
    mediaType: string;
    ref: string;
    labels: Record<string, string>;
    /** containerd 1.7+. */
    sourceDateEpoch: Timestamp | null;
  }

  interface DiffResponse {
    diff: types.Descriptor | null;
  }
}

/** `containerd.services.introspection.v1`. */
export declare namespace introspection {
  interface Plugin {
    /** e.g. `io.containerd.content.v1`, `io.containerd.snapshotter.v1`. */
    type: string;
    /** e.g. `content`, `overlayfs`. */
    id: string;
    requires: string[];
    platforms: types.Platform[];
    /** e.g. a snapshotter's `root`. */
    exports: Record<string, string>;
    capabilities: string[];
    /** Set when the plugin failed to initialise and cannot be used. */
    initErr: RpcStatus | null;
  }

  /** Plugins: filters like `type=="io.containerd.snapshotter.v1"`; none lists all. */
  interface PluginsRequest {
    filters: string[];
  }

  interface PluginsResponse {
    plugins: Plugin[];
  }
}

/** `containerd.services.version.v1`; Version takes Empty. */
export declare namespace version {
  interface VersionResponse {
    /** e.g. `1.6.20~ds1`: a digit first, a distribution suffix possible. */
    version: string;
    revision: string;
  }
}

/** `containerd.services.namespaces.v1`. */
export declare namespace namespaces {
  interface Namespace {
    name: string;
    labels: Record<string, string>;
  }

  interface ListNamespacesRequest {
    filter: string;
  }

  interface ListNamespacesResponse {
    namespaces: Namespace[];
  }

  /** Get: NOT_FOUND for an unknown name. */
  interface GetNamespaceRequest {
    name: string;
  }

  interface GetNamespaceResponse {
    namespace: Namespace | null;
  }
}
