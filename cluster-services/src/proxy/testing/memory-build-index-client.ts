import {
  FailedPreconditionError, NotFoundError, UnavailableError, parseDigest, parseRepository, parseTag, type Digest,
} from '@krill/lib';
import type { BuildIndexClient, Page } from '../../build-index/index.js';
import type { OriginClient } from '../../origin/index.js';

/**
 * An in-memory BuildIndexClient for proxy tests, keeping the real client's contract: names,
 * tags and digests are validated (ERR_NAME_INVALID, ERR_TAG_INVALID, ERR_DIGEST_INVALID); a tag
 * is accepted only when its manifest is on `origins` (FailedPrecondition
 * ERR_TAG_DEPENDENCY_MISSING); a missing tag is NotFound ERR_TAG_NOT_FOUND; lists are lexical,
 * paged by `limit` (default 100) and `last`, with `next` the last item of a full page.
 */
export interface MemoryBuildIndexClient extends BuildIndexClient {
  readonly tags: ReadonlyMap<string, ReadonlyMap<string, Digest>>;
  /** Makes every call fail as if no build-index answered, until set back. */
  setDown(down: boolean): void;
}

export function createMemoryBuildIndexClient(options: { origins?: OriginClient } = {}): MemoryBuildIndexClient {
  const tags = new Map<string, Map<string, Digest>>();
  let down = false;
  const up = () => {
    if (down) throw new UnavailableError('no build-index answered', { code: 'ERR_BUILD_INDEX_UNAVAILABLE' });
  };

  function page(all: string[], o: { limit?: number; last?: string }): Page<string> {
    const after = o.last === undefined ? all : all.filter((x) => x > o.last!);
    const limit = o.limit ?? 100;
    return after.length > limit ? { items: after.slice(0, limit), next: after[limit - 1]! } : { items: after };
  }

  return {
    tags,
    setDown(d) {
      down = d;
    },
    async putTag(repo, tag, digest) {
      up();
      parseRepository(repo);
      parseTag(tag);
      parseDigest(digest);
      if (options.origins) {
        await options.origins.stat(repo, digest).catch((err: { category?: string }) => {
          if (err.category !== 'NotFound') throw err;
          throw new FailedPreconditionError(`manifest ${digest} of ${repo} is not on the origins; push it before the tag`, { code: 'ERR_TAG_DEPENDENCY_MISSING' });
        });
      }
      let repoTags = tags.get(repo);
      if (!repoTags) tags.set(repo, (repoTags = new Map()));
      repoTags.set(tag, digest);
    },
    async getTag(repo, tag) {
      up();
      parseRepository(repo);
      parseTag(tag);
      const digest = tags.get(repo)?.get(tag);
      if (!digest) throw new NotFoundError(`tag ${repo}:${tag} does not exist`, { code: 'ERR_TAG_NOT_FOUND' });
      return { digest };
    },
    async listTags(repo, o = {}) {
      up();
      parseRepository(repo);
      return page([...(tags.get(repo)?.keys() ?? [])].sort(), o);
    },
    async listRepositories(o = {}) {
      up();
      return page([...tags.keys()].sort(), o);
    },
    async close() {},
  };
}
