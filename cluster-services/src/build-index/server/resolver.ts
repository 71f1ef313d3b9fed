import { InvalidArgumentError, NotFoundError, isCategory, type Digest, type Logger } from '@krill/lib';
import type { RegistryClient, UpstreamCredentials } from '../../upstream/index.js';
import type { TagRecord, TagStore } from '../store/tag-store.js';
import { CallerAnswers } from './caller-answers.js';
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

export interface ResolveTagOptions {
  /** The caller's own registry credentials, for pull-through repositories; ignored for local ones. */
  credentials?: UpstreamCredentials | undefined;
}

/**
 * Resolves tags. A repository that matches a pull-through rule (first match wins) is resolved by
 * its upstream registry and never from the local table: its tags belong to upstream, and a local
 * copy that shadowed them would make a re-push upstream invisible here. Its answers are cached
 * for the rule's TTL; a stale answer is served only while upstream is unreachable (Unavailable),
 * and that is logged as a warning. Upstream's NotFound (as ERR_TAG_NOT_FOUND) and
 * Unauthenticated are returned as they are, never masked by the cache, and drop the cached
 * answer, so that it is not served stale later either.
 *
 * A lookup with the caller's credentials asks upstream with those only, and its answer is
 * cached apart, per repository, tag and credentials (in memory, see CallerAnswers): it answers
 * only later lookups with the same credentials, within the TTL or stale as above. A lookup
 * with none uses the configured credentials and the table's cache, which no caller's answer
 * enters. So no caller gets, without upstream being asked with its own credentials (or, for
 * none, the configured ones), an answer that other credentials obtained.
 *
 * Every other repository is read from the local table. Safe to call concurrently; concurrent
 * upstream lookups of one tag with the same credentials share one request.
 */
export interface TagResolver {
  /** True when `repo` is served by pull-through (its tags cannot be put here). */
  isPullThrough(repo: string): boolean;
  resolve(repo: string, tag: string, options?: ResolveTagOptions): Promise<ResolvedTag>;
}

export interface TagResolverOptions {
  store: TagStore;
  rules: readonly PullThroughRule[];
  registry: RegistryClient;
  logger: Logger;
  metrics: BuildIndexMetrics;
  /** The clock, in ms since the epoch; tests pass their own. */
  now?: () => number;
  /** The cache of answers obtained with callers' credentials; one of its own when absent. */
  callerAnswers?: CallerAnswers;
}

interface CompiledRule {
  pattern: RegExp;
  ttlMs: number;
}

/**
 * Where one lookup's answer is kept: the table for lookups with the configured credentials,
 * CallerAnswers for a caller's. `key` also names the lookup for sharing concurrent ones.
 */
interface Slot {
  key: string;
  credentials?: UpstreamCredentials;
  get(): TagRecord | undefined;
  put(digest: Digest, mediaType: string): void;
  drop(): void;
}

export function createTagResolver(o: TagResolverOptions): TagResolver {
  const now = o.now ?? Date.now;
  const rules = compileRules(o.rules);
  const ruleFor = (repo: string) => rules.find((r) => r.pattern.test(repo));
  const callers = o.callerAnswers ?? new CallerAnswers();
  const inFlight = new Map<string, Promise<ResolvedTag>>();

  function slotOf(repo: string, tag: string, credentials: UpstreamCredentials | undefined): Slot {
    if (!credentials) {
      return {
        key: `${repo}:${tag}`, get: () => o.store.getUpstream(repo, tag),
        put: (digest, mediaType) => o.store.putUpstream(repo, tag, digest, mediaType), drop: () => o.store.deleteUpstream(repo, tag),
      };
    }
    // Repository names and tags cannot hold the NUL that separates the credentials' HMAC in the key.
    const key = callers.keyOf(repo, tag, credentials);
    return {
      key, credentials, get: () => callers.get(key),
      put: (digest, mediaType) => callers.put(key, digest, mediaType, now()), drop: () => callers.delete(key),
    };
  }

  async function askUpstream(repo: string, tag: string, slot: Slot): Promise<ResolvedTag> {
    const cached = slot.get();
    try {
      // No caller's signal: the lookup is shared, and the registry client bounds it with its timeout.
      const head = await o.registry.resolve(repo, tag, undefined, slot.credentials ? { credentials: slot.credentials } : {});
      slot.put(head.digest, head.mediaType);
      o.metrics.upstreamResolutions.inc({ result: 'ok' });
      return { digest: head.digest, mediaType: head.mediaType, source: 'upstream' };
    } catch (err) {
      o.metrics.upstreamResolutions.inc({ result: resultOf(err) });
      if (isCategory(err, 'NotFound')) {
        slot.drop();
        throw new NotFoundError(`tag ${repo}:${tag} does not exist upstream: ${err.message}`, { code: 'ERR_TAG_NOT_FOUND', cause: err });
      }
      // Credentials upstream refuses now get nothing it gave them before, stale or not.
      if (isCategory(err, 'Unauthenticated')) slot.drop();
      if (!cached || !isCategory(err, 'Unavailable')) throw err;
      o.metrics.staleServed.inc();
      o.logger.warn({
        ref: `${repo}:${tag}`, digest: cached.digest, ageSeconds: Math.round((now() - cached.updatedAt) / 1000), err: err.message,
      }, 'upstream registry unreachable; serving the last answer it gave');
      return answer(cached, 'stale');
    }
  }

  function resolveUpstream(repo: string, tag: string, rule: CompiledRule, credentials: UpstreamCredentials | undefined): Promise<ResolvedTag> {
    const slot = slotOf(repo, tag, credentials);
    const cached = slot.get();
    if (cached && now() - cached.updatedAt < rule.ttlMs) return Promise.resolve(answer(cached, 'cache'));
    let flight = inFlight.get(slot.key);
    if (!flight) {
      flight = askUpstream(repo, tag, slot).finally(() => inFlight.delete(slot.key));
      inFlight.set(slot.key, flight);
    }
    return flight;
  }

  return {
    isPullThrough: (repo) => ruleFor(repo) !== undefined,
    async resolve(repo, tag, options = {}) {
      const rule = ruleFor(repo);
      const result = rule ? await resolveUpstream(repo, tag, rule, options.credentials) : resolveLocal(o.store, repo, tag);
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
