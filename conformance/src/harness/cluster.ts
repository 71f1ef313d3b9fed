import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildIndexConfigSchema, createOriginClient, originConfigSchema, proxyConfigSchema, startBuildIndex, startOrigin, startProxy,
  type BackendRuleConfig, type BuildIndexConfig, type OriginClient, type OriginConfig, type ProxyConfig, type RegistryHosts,
} from '@krill/cluster-services';
import { silentLogger, validateConfig, type Logger } from '@krill/lib';

export interface ClusterOptions {
  dir: string;
  origins?: number;
  /** Origin backend rules; default one filesystem backend under dir/backend for every namespace. */
  backends?: BackendRuleConfig[];
  registries?: RegistryHosts;
  pullThrough?: Array<{ namespace: string; tagTtlSeconds?: number }>;
  logger?: Logger;
}

export interface Cluster {
  proxyUrl: string;
  /** host:port of the proxy, for `docker://` references. */
  proxyHost: string;
  buildIndexUrl: string;
  originUrls: string[];
  originClient: OriginClient;
  close(): Promise<void>;
}

/**
 * A whole krill blob plane in this process, every server on 127.0.0.1 port 0: origins (ring of
 * all of them), the build-index and the proxy. Closed in reverse order.
 */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const logger = o.logger ?? silentLogger();
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const origins = [];
    for (let i = 0; i < (o.origins ?? 3); i++) {
      const config = validateConfig<OriginConfig>(originConfigSchema, {
        // Every origin seeds over the peer wire too, on a port of its own.
        listen: { port: 0 }, peer: { port: 0 }, store: { dir: join(o.dir, `origin-${i}`) },
        backends: o.backends ?? [{ namespace: '.*', fs: { root: join(o.dir, 'backend') } }],
        registries: o.registries ?? {},
      });
      const origin = await startOrigin(config, { logger: logger.child({ origin: i }) });
      closers.push(() => origin.close());
      origins.push(origin);
    }
    const originUrls = origins.map((x) => x.url);
    for (const x of origins) x.setCluster(originUrls);
    mkdirSync(join(o.dir, 'build-index'), { recursive: true });
    const buildIndex = await startBuildIndex(validateConfig<BuildIndexConfig>(buildIndexConfigSchema, {
      listen: { port: 0 }, db: join(o.dir, 'build-index', 'tags.db'), origins: { urls: originUrls },
      pullThrough: o.pullThrough ?? [], registries: o.registries ?? {},
    }), { logger: logger.child({ component: 'build-index' }) });
    closers.push(() => buildIndex.close());
    const proxy = await startProxy(validateConfig<ProxyConfig>(proxyConfigSchema, {
      listen: { port: 0 }, origins: { urls: originUrls }, buildIndex: { urls: [buildIndex.url] }, uploadDir: join(o.dir, 'proxy-uploads'),
    }), { logger: logger.child({ component: 'proxy' }) });
    closers.push(() => proxy.close());
    const originClient = createOriginClient({ origins: originUrls, logger });
    closers.push(() => originClient.close());
    return { proxyUrl: proxy.url, proxyHost: new URL(proxy.url).host, buildIndexUrl: buildIndex.url, originUrls, originClient, close };
  } catch (err) {
    await close();
    throw err;
  }
}
