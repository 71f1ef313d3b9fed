import { Counter } from 'prom-client';
import { createHttpService, once, type Logger } from '@krill/lib';
import { createOriginClient, type OriginClient } from '../../origin/index.js';
import { createRegistryClient, type RegistryClient } from '../../upstream/index.js';
import type { BuildIndexConfig } from '../config.js';
import { openTagStore } from '../store/tag-store.js';
import { createTagResolver } from './resolver.js';
import { registerBuildIndexRoutes } from './routes.js';

/** Opens the tag database and serves the build-index API. */
export async function startBuildIndex(config: BuildIndexConfig, deps: { logger: Logger; originClient?: OriginClient; registryClient?: RegistryClient }): Promise<{ url: string; close(): Promise<void> }> {
  const logger = deps.logger;
  const store = openTagStore(config.db);
  const origins = deps.originClient ?? createOriginClient({ origins: config.origins.urls, replicas: config.origins.replicas, logger });
  const registry = deps.registryClient ?? createRegistryClient({ hosts: config.registries, logger });
  const service = createHttpService({ name: 'build-index', logger, shutdownTimeoutMs: config.shutdownTimeoutMs });
  const puts = new Counter({ name: 'krill_build_index_tag_puts_total', help: 'Tags set.', registers: [service.metrics] });
  const resolutions = new Counter({ name: 'krill_build_index_pull_through_total', help: 'Pull-through tag resolutions by result (upstream, cached, stale).', labelNames: ['result'], registers: [service.metrics] });
  const resolver = createTagResolver({ store, rules: config.pullThrough, registry, logger, counter: resolutions });
  registerBuildIndexRoutes(service.app, { store, origins, resolver, puts });
  const url = await service.listen(config.listen.host, config.listen.port);
  return {
    url,
    close: once(async () => {
      await service.close();
      if (!deps.originClient) await origins.close();
      store.close();
    }),
  };
}
