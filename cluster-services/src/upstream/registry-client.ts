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

/**
 * A caller's own registry credentials (what kubelet hands to PullImage), used for one call
 * instead of the configured ones. An identity token travels as containerd's ParseAuth makes it
 * (CRI `identity_token` → username '' and the token as password); Docker's credential helpers'
 * username '<token>' means the same. An identity token is offered to a Bearer realm as an OAuth2
 * refresh token (POST, distribution's oauth.md), falling back to a GET with it as Basic
 * password where the realm has no POST, as containerd does; to a Basic challenge it is sent as
 * given. Basic credentials cannot carry a ':' in the username (RFC 7617 §2).
 */
export interface UpstreamCredentials {
  username: string;
  password: string;
}

export interface ResolveOptions {
  /**
   * Ask with these and only these: never the configured credentials, never a token or
   * Authorization obtained with other credentials (or none).
   */
  credentials?: UpstreamCredentials;
}

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
 * Errors: NotFound (ERR_UPSTREAM_NOT_FOUND), Unauthenticated (ERR_UPSTREAM_UNAUTHORIZED when
 * the registry or its token endpoint answers 401 or 403; the message names the registry, the
 * endpoint and the user, and whether the credentials were the caller's; never a password or
 * token), InvalidArgument
 * (ERR_UPSTREAM_NAMESPACE) for a namespace with no registry component, Unavailable
 * (ERR_UPSTREAM_UNAVAILABLE) for network errors and 5xx. Safe to call concurrently.
 */
export interface RegistryClient {
  /**
   * Resolves a tag (or digest) to the manifest's digest, media type and size, with the caller's
   * credentials when `options.credentials` is given (see ResolveOptions), else the configured ones.
   */
  resolve(namespace: string, reference: string, signal?: AbortSignal, options?: ResolveOptions): Promise<ManifestHead>;
  /** Size of a blob or manifest by digest. */
  stat(namespace: string, digest: Digest, signal?: AbortSignal): Promise<{ size: number }>;
  /** A blob's bytes (falling back to the manifests endpoint for manifest digests). Caller consumes the stream. */
  fetch(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Readable>;
}
