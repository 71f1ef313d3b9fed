import type { Digest } from '@krill/lib';

/**
 * The only caller of the build-index HTTP API: tags (`repo:tag` → manifest digest).
 * Safe to call concurrently. Errors: NotFound (ERR_TAG_NOT_FOUND), FailedPrecondition
 * (ERR_TAG_DEPENDENCY_MISSING, naming the missing digest) when the manifest or a blob it
 * references is not on the origins, InvalidArgument (ERR_NAME_INVALID, ERR_TAG_INVALID,
 * ERR_DIGEST_INVALID), Unauthenticated (upstream refused credentials), Unavailable
 * (ERR_BUILD_INDEX_UNAVAILABLE) when no build-index answered.
 */
export interface Page<T> {
  items: T[];
  /** Pass as `last` to get the next page; absent on the last page. */
  next?: string;
}

export interface BuildIndexClient {
  /** Points `repo:tag` at `digest`; a later put replaces it and every reader sees the new value. */
  putTag(repo: string, tag: string, digest: Digest, signal?: AbortSignal): Promise<void>;
  /**
   * The digest `repo:tag` points at. For pull-through repositories the build-index asks the
   * upstream registry (cached with a TTL).
   */
  getTag(repo: string, tag: string, signal?: AbortSignal): Promise<{ digest: Digest; mediaType?: string }>;
  /** Tags of a repository in lexical order, after `last`, at most `limit` (default 100). */
  listTags(repo: string, options?: { limit?: number; last?: string; signal?: AbortSignal }): Promise<Page<string>>;
  /** Repositories with at least one tag, in lexical order, after `last`. */
  listRepositories(options?: { limit?: number; last?: string; signal?: AbortSignal }): Promise<Page<string>>;
  close(): Promise<void>;
}
