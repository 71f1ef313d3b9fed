import type { Readable } from 'node:stream';
import type { Digest } from '@krill/lib';

/**
 * How to reach one upstream registry, keyed by its name (`docker.io`, `gcr.io`,
 * `upstream.local`): like containerd's hosts.toml, the endpoints may be mirrors or an
 * air-gapped copy. Endpoints are tried in order.
 */
export interface RegistryHostConfig {
  /** Base URLs, e.g. `http://127.0.0.1:5000`; default `https://<name>` (`registry-1.docker.io` for docker.io). */
  endpoints?: string[];
  /** HTTP basic credentials, also used to obtain bearer tokens. */
  username?: string;
  password?: string;
  /** Per-request timeout for headers, in ms. */
  timeoutMs?: number;
}

export type RegistryHosts = Record<string, RegistryHostConfig>;

export interface ManifestHead {
  digest: Digest;
  mediaType: string;
  size: number;
}

/**
 * A read-only client of upstream OCI registries (distribution spec v1.1 pull API), with
 * anonymous, basic and bearer-token auth (WWW-Authenticate challenge, token cached until it
 * expires) and redirects to blob storage followed.
 *
 * A namespace names the registry in its first component: `upstream.local/team/app` is
 * repository `team/app` on registry `upstream.local`; `docker.io/busybox` is `library/busybox`.
 *
 * Errors: NotFound (ERR_UPSTREAM_NOT_FOUND), Unauthenticated (ERR_UPSTREAM_UNAUTHORIZED, the
 * message names the registry, the endpoint and the user), InvalidArgument
 * (ERR_UPSTREAM_NAMESPACE) for a namespace with no registry component, Unavailable
 * (ERR_UPSTREAM_UNAVAILABLE) for network errors and 5xx. Safe to call concurrently.
 */
export interface RegistryClient {
  /** Resolves a tag (or digest) to the manifest's digest, media type and size. */
  resolve(namespace: string, reference: string, signal?: AbortSignal): Promise<ManifestHead>;
  /** Size of a blob or manifest by digest. */
  stat(namespace: string, digest: Digest, signal?: AbortSignal): Promise<{ size: number }>;
  /** A blob's bytes (falling back to the manifests endpoint for manifest digests). Caller consumes the stream. */
  fetch(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Readable>;
}
