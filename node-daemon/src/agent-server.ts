import { Counter, Gauge, type Registry } from 'prom-client';
import { createHttpService, once, type Logger, type MemberResolver } from '@krill/lib';
import { createBuildIndexClient, type BuildIndexClient, type OriginClient, type TrackerClient } from '@krill/cluster-services';
import type { Agent } from './agent/agent.js';
import type { AgentConfig } from './agent/config.js';
import { createAgent } from './agent/core/agent-core.js';
import { registerRegistryRoutes } from './registry/registry-routes.js';

export interface RunningAgent {
  /** The local registry API's base URL. */
  url: string;
  agent: Agent;
  /** The registry `/metrics` serves; the node daemon adds its own metrics to it. */
  metrics: Registry;
  buildIndex: BuildIndexClient;
  close(): Promise<void>;
}

/**
 * `krill agent`: the P2P agent core and the node's local registry API (loopback by default),
 * with `/metrics` reporting bytes received by source, bytes served to peers, and the cache.
 */
export async function startAgent(config: AgentConfig, deps: {
  logger: Logger; tracker?: TrackerClient; origins?: OriginClient; buildIndex?: BuildIndexClient;
  /** Extra readiness for `/ready` (the node daemon's CRI socket). */
  ready?: () => Promise<void>;
  /** The service name in logs and metric labels (default `agent`; the node daemon says `node`). */
  name?: string;
  /** Resolves `origins.dns` and `trackers.dns`; node:dns by default. */
  dnsResolver?: MemberResolver;
}): Promise<RunningAgent> {
  const logger = deps.logger;
  const agent = await createAgent(config, {
    logger, ...(deps.tracker ? { tracker: deps.tracker } : {}), ...(deps.origins ? { origins: deps.origins } : {}),
    ...(deps.dnsResolver ? { dnsResolver: deps.dnsResolver } : {}),
  });
  const buildIndex = deps.buildIndex ?? createBuildIndexClient({ urls: config.buildIndex.urls, logger });
  const service = createHttpService({ name: deps.name ?? 'agent', logger, shutdownTimeoutMs: config.shutdownTimeoutMs, ...(deps.ready ? { ready: deps.ready } : {}) });
  const m = service.metrics;
  new Gauge({
    name: 'krill_agent_received_bytes', help: 'Bytes of verified pieces received, by source (peers, origins over the wire, origins over HTTP).', labelNames: ['source'], registers: [m],
    collect() {
      const r = agent.stats().received;
      this.set({ source: 'peers' }, r.peers);
      this.set({ source: 'origins' }, r.origins);
      this.set({ source: 'origin_http' }, r.originHttp);
    },
  });
  new Gauge({ name: 'krill_agent_served_bytes', help: 'Bytes of pieces served to other peers.', registers: [m], collect() { this.set(agent.stats().served); } });
  new Gauge({ name: 'krill_agent_downloads_active', help: 'Blobs being downloaded.', registers: [m], collect() { this.set(agent.stats().active); } });
  new Gauge({ name: 'krill_agent_downloads', help: 'Downloads started since the agent started.', registers: [m], collect() { this.set(agent.stats().downloads); } });
  const registryBytes = new Counter({ name: 'krill_agent_registry_bytes_total', help: 'Blob bytes sent by the local registry API.', registers: [m] });
  registerRegistryRoutes(service.app, { agent, buildIndex, logger, onServed: (n) => registryBytes.inc(n) });
  const url = await service.listen(config.listen.host, config.listen.port);
  logger.info({ url, peer: agent.peerAddress }, 'agent ready');
  return {
    url, agent, metrics: m, buildIndex,
    close: once(async () => {
      await service.close();
      await agent.close();
      if (!deps.buildIndex) await buildIndex.close();
    }),
  };
}
