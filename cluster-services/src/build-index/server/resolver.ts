import type { Counter } from 'prom-client';
import { NotFoundError, isCategory, type Digest, type Logger } from '@krill/lib';
import type { RegistryClient } from '../../upstream/index.js';
import type { TagStore } from '../store/tag-store.js';

export interface PullThroughRule {
  namespace: string;
  tagTtlSeconds: number;
}

/**
 * Resolves tags: repositories matched by a pull-through rule ask their upstream registry, with the
 * answer cached for the rule's TTL; a stale answer is served only when the upstream is
 * unreachable (and that is logged). Other repositories are read from the local tag table.
 */
export function createTagResolver(o: { store: TagStore; rules: readonly PullThroughRule[]; registry: RegistryClient; logger: Logger; counter?: Counter }) {
  const rules = o.rules.map((r, i) => {
    try {
      return { pattern: new RegExp(r.namespace), ttlMs: r.tagTtlSeconds * 1000 };
    } catch (err) {
      throw new Error(`pullThrough.${i}.namespace: invalid regular expression: ${(err as Error).message}`);
    }
  });
  const ruleFor = (repo: string) => rules.find((r) => r.pattern.test(repo));

  return {
    isPullThrough: (repo: string) => ruleFor(repo) !== undefined,
    async resolve(repo: string, tag: string, signal?: AbortSignal): Promise<{ digest: Digest; mediaType?: string }> {
      const rule = ruleFor(repo);
      if (!rule) {
        const rec = o.store.get(repo, tag);
        if (!rec) throw new NotFoundError(`tag ${repo}:${tag} does not exist`, { code: 'ERR_TAG_NOT_FOUND' });
        return { digest: rec.digest, ...(rec.mediaType ? { mediaType: rec.mediaType } : {}) };
      }
      const cached = o.store.getUpstream(repo, tag);
      if (cached && Date.now() - cached.updatedAt < rule.ttlMs) {
        o.counter?.inc({ result: 'cached' });
        return { digest: cached.digest, ...(cached.mediaType ? { mediaType: cached.mediaType } : {}) };
      }
      try {
        const head = await o.registry.resolve(repo, tag, signal);
        o.store.putUpstream(repo, tag, head.digest, head.mediaType);
        o.counter?.inc({ result: 'upstream' });
        return { digest: head.digest, ...(head.mediaType ? { mediaType: head.mediaType } : {}) };
      } catch (err) {
        if (isCategory(err, 'NotFound')) throw new NotFoundError(`tag ${repo}:${tag} does not exist upstream`, { code: 'ERR_TAG_NOT_FOUND', cause: err });
        if (cached && isCategory(err, 'Unavailable')) {
          o.counter?.inc({ result: 'stale' });
          o.logger.warn({ ref: `${repo}:${tag}`, digest: cached.digest, ageSeconds: Math.round((Date.now() - cached.updatedAt) / 1000), err: (err as Error).message },
            'upstream unreachable; serving a stale tag');
          return { digest: cached.digest, ...(cached.mediaType ? { mediaType: cached.mediaType } : {}) };
        }
        throw err;
      }
    },
  };
}
