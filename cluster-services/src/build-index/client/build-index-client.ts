import type { Digest } from '@krill/lib';
import type { UpstreamCredentials } from '../../upstream/index.js';

export interface Page<T> {
  items: T[];
  /** Pass as `last` to get the next page; absent on the last page. */
  next?: string;
}

/**
 * The only caller of the build-index HTTP API: tags (`repo:tag` → manifest digest).
 * Safe to call concurrently. Errors: NotFound (ERR_TAG_NOT_FOUND), FailedPrecondition
 * (ERR_TAG_DEPENDENCY_MISSING, naming the missing digest first in its message) when the manifest
 * or a blob it references is not on the origins, FailedPrecondition (ERR_TAG_PULL_THROUGH) for a
 * put to a repository served by pull-through, InvalidArgument (ERR_NAME_INVALID, ERR_TAG_INVALID,
 * ERR_DIGEST_INVALID, ERR_LIMIT_INVALID; ERR_MANIFEST_INVALID, ERR_MANIFEST_UNSUPPORTED,
 * ERR_MANIFEST_TOO_LARGE, ERR_MANIFEST_TOO_DEEP, ERR_MANIFEST_TOO_MANY_REFERENCES for a tagged
 * manifest the build-index cannot check), Unauthenticated (ERR_UPSTREAM_UNAUTHORIZED: upstream
 * refused the caller's or the configured credentials; not tried on the next build-index),
 * InvalidArgument ERR_CREDENTIALS_INVALID (a username with ':'),
 * Unavailable (ERR_UPSTREAM_UNAVAILABLE when a pull-through upstream is unreachable and nothing
 * is cached; ERR_BUILD_INDEX_UNAVAILABLE when no build-index answered), Canceled.
 */
export interface BuildIndexClient {
  /** Points `repo:tag` at `digest`; a later put replaces it and every reader sees the new value. */
  putTag(repo: string, tag: string, digest: Digest, signal?: AbortSignal): Promise<void>;
  /**
   * The digest `repo:tag` points at. For pull-through repositories the build-index asks the
   * upstream registry (cached with a TTL), with `options.credentials` only when given (the
   * caller's own, as kubelet hands them to PullImage; an answer they obtained is cached for
   * them alone), else with the credentials configured for that registry. Local repositories
   * ignore the credentials.
   */
  getTag(repo: string, tag: string, signal?: AbortSignal, options?: { credentials?: UpstreamCredentials }): Promise<{ digest: Digest; mediaType?: string }>;
  /**
   * Tags pushed to a repository, in lexical order, after `last`, at most `limit` (default 100;
   * the server caps it at 1000). Pull-through repositories list nothing: their tags live upstream.
   */
  listTags(repo: string, options?: { limit?: number; last?: string; signal?: AbortSignal }): Promise<Page<string>>;
  /** Repositories with at least one pushed tag, in lexical order, after `last`, paged as listTags. */
  listRepositories(options?: { limit?: number; last?: string; signal?: AbortSignal }): Promise<Page<string>>;
  close(): Promise<void>;
}
