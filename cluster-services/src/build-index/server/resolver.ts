import { InvalidArgumentError, NotFoundError, isCategory, type Digest, type Logger } from '@krill/lib';
import type { RegistryClient } from '../../upstream/index.js';
import type { TagRecord, TagStore } from '../store/tag-store.js';
import type { BuildIndexMetrics } from './metrics.js';

/** Repositories whose name matches `namespace` (a regular expression) are resolved upstream. */
export interface PullThroughRule {
  namespace: string;
  /** How long an upstream answer is used without asking again; 0 asks every time. */
  tagTtlSeconds: number;
}

/** Where an answer came from: the local table, upstream now, the cache within its TTL, or a stale cache. */
export type TagSource = 'local' | 'upstream' | 'cache' | 'stale';

export interface ResolvedTag {
  digest: Digest;
  mediaType?: string;
  source: TagSource;
}

/**
 * Resolves tags. A repository that matches a pull-through rule (first match wins) is resolved by
 * its upstream registry and never from the local table: its tags belong to upstream, and a local
 * copy that shadowed them would make a re-push upstream invisible here. Its answers are cached
 * for the rule's TTL; a stale answer is served only while upstream is unreachable (Unavailable),
 * and that is logged as a warning. Upstream's NotFound (as ERR_TAG_NOT_FOUND, and the cached
 * answer is dropped) and Unauthenticated are returned as they are, never masked by the cache.
 * Every other repository is read from the local table. Safe to call concurrently; concurrent
 * upstream lookups of one tag share one request.
 */
export interface TagResolver {
  /** True when `repo` is served by pull-through (its tags cannot be put here). */
  isPullThrough(repo: string): boolean;
  resolve(repo: string, tag: string): Promise<ResolvedTag>;
}

export interface TagResolverOptions {
  store: TagStore;
  rules: readonly PullThroughRule[];
  registry: RegistryClient;
  logger: Logger;
  metrics: BuildIndexMetrics;
  /** The clock, in ms since the epoch; tests pass their own. */
  now?: () => number;
}

interface CompiledRule {
  pattern: RegExp;
  ttlMs: number;
}

export function createTagResolver(o: TagResolverOptions): TagResolver {
  const now = o.now ?? Date.now;
  const rules = compileRules(o.rules);
  const ruleFor = (repo: string) => rules.find((r) => r.pattern.test(repo));
  const inFlight = new Map<string, Promise<ResolvedTag>>();

  async function askUpstream(repo: string, tag: string): Promise<ResolvedTag> {
    const cached = o.store.getUpstream(repo, tag);
    try {
      // No caller's signal: the lookup is shared, and the registry client bounds it with its timeout.
      const head = await o.registry.resolve(repo, tag);
      o.store.putUpstream(repo, tag, head.digest, head.mediaType);
      o.metrics.upstreamResolutions.inc({ result: 'ok' });
      return { digest: head.digest, mediaType: head.mediaType, source: 'upstream' };
    } catch (err) {
      o.metrics.upstreamResolutions.inc({ result: resultOf(err) });
      if (isCategory(err, 'NotFound')) {
        o.store.deleteUpstream(repo, tag);
        throw new NotFoundError(`tag ${repo}:${tag} does not exist upstream: ${err.message}`, { code: 'ERR_TAG_NOT_FOUND', cause: err });
      }
      if (!cached || !isCategory(err, 'Unavailable')) throw err;
      o.metrics.staleServed.inc();
      o.logger.warn({
        ref: `${repo}:${tag}`, digest: cached.digest, ageSeconds: Math.round((now() - cached.updatedAt) / 1000), err: err.message,
      }, 'upstream registry unreachable; serving the last answer it gave');
      return answer(cached, 'stale');
    }
  }

  function resolveUpstream(repo: string, tag: string, rule: CompiledRule): Promise<ResolvedTag> {
    const cached = o.store.getUpstream(repo, tag);
    if (cached && now() - cached.updatedAt < rule.ttlMs) return Promise.resolve(answer(cached, 'cache'));
    const key = `${repo}:${tag}`;
    let flight = inFlight.get(key);
    if (!flight) {
      flight = askUpstream(repo, tag).finally(() => inFlight.delete(key));
      inFlight.set(key, flight);
    }
    return flight;
  }

  return {
    isPullThrough: (repo) => ruleFor(repo) !== undefined,
    async resolve(repo, tag) {
      const rule = ruleFor(repo);
      const result = rule ? await resolveUpstream(repo, tag, rule) : resolveLocal(o.store, repo, tag);
      o.metrics.tagGets.inc({ source: result.source });
      return result;
    },
  };
}

function resolveLocal(store: TagStore, repo: string, tag: string): ResolvedTag {
  const rec = store.get(repo, tag);
  if (!rec) throw new NotFoundError(`tag ${repo}:${tag} does not exist`, { code: 'ERR_TAG_NOT_FOUND' });
  return answer(rec, 'local');
}

function answer(rec: TagRecord, source: TagSource): ResolvedTag {
  return { digest: rec.digest, ...(rec.mediaType ? { mediaType: rec.mediaType } : {}), source };
}

function resultOf(err: unknown): string {
  if (isCategory(err, 'NotFound')) return 'not_found';
  if (isCategory(err, 'Unauthenticated')) return 'unauthenticated';
  if (isCategory(err, 'Unavailable')) return 'unavailable';
  return 'error';
}

/** Compiles the rules once, at start, so a bad pattern fails the start naming its key. */
function compileRules(rules: readonly PullThroughRule[]): CompiledRule[] {
  return rules.map((r, i) => {
    try {
      return { pattern: new RegExp(r.namespace), ttlMs: r.tagTtlSeconds * 1000 };
    } catch (err) {
      throw new InvalidArgumentError(`config key pullThrough.${i}.namespace: not a valid regular expression: ${(err as Error).message}`, { code: 'ERR_CONFIG_INVALID', cause: err });
    }
  });
}
