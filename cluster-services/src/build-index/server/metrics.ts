import { Counter, type Registry } from 'prom-client';

/** The build-index's own figures (request counts and latency come from the HTTP service). */
export interface BuildIndexMetrics {
  /** Tag puts by result: ok, dependency_missing, invalid, error. */
  tagPuts: Counter<'result'>;
  /** Tags answered, by source: local, upstream, cache, stale. */
  tagGets: Counter<'source'>;
  /** Questions to upstream registries by result: ok, not_found, unauthenticated, unavailable, error. */
  upstreamResolutions: Counter<'result'>;
  /** Stale pull-through answers served because upstream was unreachable. */
  staleServed: Counter;
}

export function createBuildIndexMetrics(registry: Registry): BuildIndexMetrics {
  return {
    tagPuts: new Counter({ name: 'krill_build_index_tag_puts_total', help: 'Tag puts by result.', labelNames: ['result'], registers: [registry] }),
    tagGets: new Counter({ name: 'krill_build_index_tag_gets_total', help: 'Tags answered, by source (local, upstream, cache, stale).', labelNames: ['source'], registers: [registry] }),
    upstreamResolutions: new Counter({
      name: 'krill_build_index_upstream_resolutions_total', help: 'Pull-through tag lookups sent to upstream registries, by result.', labelNames: ['result'], registers: [registry],
    }),
    staleServed: new Counter({ name: 'krill_build_index_stale_served_total', help: 'Stale pull-through answers served while upstream was unreachable.', registers: [registry] }),
  };
}

/** The `result` label of a failed tag put. */
export function putResultOf(err: unknown): string {
  const e = err as { code?: string; category?: string };
  if (e.code === 'ERR_TAG_DEPENDENCY_MISSING') return 'dependency_missing';
  if (e.category === 'InvalidArgument' || e.category === 'FailedPrecondition') return 'invalid';
  return 'error';
}
