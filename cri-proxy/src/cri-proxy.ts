import type { Registry } from 'prom-client';
import type { Logger } from '@krill/lib';
import type { PullImageRequest } from '@krill/proto';

/**
 * What krill's PullImage does with a request: pulled (the image is in containerd and visible to
 * its CRI, `imageRef` is the config digest containerd reports as the image id), or handed back
 * with the reason, in which case the server forwards the original request bytes to containerd's
 * own PullImage (fail open, or a registry configured direct-only).
 */
export type PullOutcome = { imageRef: string } | { forward: string };

/** The node daemon's side of PullImage. */
export interface ImagePuller {
  /**
   * Pulls `request.image` through krill. Throws a KrillError for an answer that containerd would
   * give too and that forwarding cannot change (InvalidArgument for a bad reference, NotFound
   * for an unknown image, Unauthenticated for rejected credentials, Canceled when `signal`
   * aborts); returns `{ forward }` when krill cannot serve the pull. Safe to call concurrently;
   * pulls of one image share the work. `signal` aborts when the client cancels or its deadline
   * passes.
   */
  pull(request: PullImageRequest, o: { signal: AbortSignal; deadline?: Date }): Promise<PullOutcome>;
  /**
   * Told once containerd answered a PullImage that `pull` handed back: its image_ref, or the
   * gRPC code and message it failed with. For metrics and logs; must not throw.
   */
  forwarded?(request: PullImageRequest, result: { imageRef: string } | { code: number; details: string }): void;
}

export interface CriServerOptions {
  /** The unix socket to listen on; created with mode 0660, replacing a stale socket file. */
  socket: string;
  /** containerd's gRPC socket: its CRI answers every call krill does not handle itself. */
  containerdSocket: string;
  puller: ImagePuller;
  logger: Logger;
  /** Where the per-RPC metrics are registered. */
  metrics: Registry;
}

/**
 * The CRI socket: runtime.v1 ImageService with PullImage through krill, and every other call
 * (ListImages, ImageStatus, RemoveImage, ImageFsInfo, the whole RuntimeService and any method
 * this build does not know) forwarded to containerd as raw bytes, streams included, with the
 * caller's metadata, deadline and cancellation. One socket can therefore serve as both kubelet
 * endpoints. Every call gets one log line (method, gRPC code, duration; never credentials) and
 * is counted in `krill_cri_requests_total{method,code}`.
 */
export interface CriServer {
  socket: string;
  /** Stops accepting calls, waits up to `graceMs` (default 5 s) for running ones, then cancels them. */
  close(graceMs?: number): Promise<void>;
}
