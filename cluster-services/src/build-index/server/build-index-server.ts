import { createHttpService, createMembership, once, type Logger, type MemberResolver } from '@krill/lib';
import { createOriginClient, type OriginClient } from '../../origin/index.js';
import { createRegistryClient, type RegistryClient } from '../../upstream/index.js';
import type { BuildIndexConfig } from '../config.js';
import { openTagStore } from '../store/tag-store.js';
import { createBuildIndexMetrics } from './metrics.js';
import { createTagResolver } from './resolver.js';
import { registerBuildIndexRoutes } from './routes.js';

export interface BuildIndexDeps {
  logger: Logger;
  /** The origins to check tags against; made from `config.origins` when absent (and then closed with the service). */
  originClient?: OriginClient;
  /** The upstream registries for pull-through; made from `config.registries` when absent. */
  registryClient?: RegistryClient;
  /** Resolves `origins.dns`; node:dns by default, tests pass one pointed at their own DNS server. */
  dnsResolver?: MemberResolver;
  /** The clock for tag times and pull-through TTLs, in ms since the epoch; tests pass their own. */
  now?: () => number;
}

export interface RunningBuildIndex {
  /** The base URL it listens on. */
  url: string;
  /** Stops accepting, lets in-flight requests finish (up to shutdownTimeoutMs), then closes the database. */
  close(): Promise<void>;
}

/** Opens the tag database and serves the build-index API (see routes.ts). */
export async function startBuildIndex(config: BuildIndexConfig, deps: BuildIndexDeps): Promise<RunningBuildIndex> {
  const logger = deps.logger;
  const store = openTagStore({ path: config.db, ...(deps.now ? { now: deps.now } : {}) });
  const originLog = logger.child({ part: 'origins' });
  const origins = deps.originClient ?? createOriginClient({
    origins: createMembership({ what: 'origins', ...config.origins, resolver: deps.dnsResolver, logger: originLog }), replicas: config.origins.replicas, logger: originLog,
  });
  const service = createHttpService({ name: 'build-index', logger, shutdownTimeoutMs: config.shutdownTimeoutMs, ready: async () => store.check() });
  const close = once(async () => {
    await service.close();
    if (!deps.originClient) await origins.close();
    store.close();
  });
  try {
    const registry = deps.registryClient ?? createRegistryClient({ hosts: config.registries, logger: logger.child({ part: 'upstream' }) });
    const metrics = createBuildIndexMetrics(service.metrics);
    const resolver = createTagResolver({ store, rules: config.pullThrough, registry, logger: logger.child({ part: 'resolver' }), metrics, ...(deps.now ? { now: deps.now } : {}) });
    registerBuildIndexRoutes(service.app, { store, origins, resolver, metrics });
    const url = await service.listen(config.listen.host, config.listen.port);
    logger.info({ url, db: config.db, pullThrough: config.pullThrough.length }, 'build-index listening');
    return { url, close };
  } catch (err) {
    await close();
    throw err;
  }
}
