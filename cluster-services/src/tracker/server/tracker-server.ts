import { Counter, Gauge } from 'prom-client';
import { createHttpService, createMembership, once, type Logger, type MemberResolver } from '@krill/lib';
import { createOriginClient, type OriginClient } from '../../origin/index.js';
import type { TrackerConfig } from '../config.js';
import { createPeerStore } from '../store/memory-peer-store.js';
import { createAnnounceHandler, registerTrackerRoutes } from './routes.js';
import { serveAnnounceStreams } from '../stream/stream-server.js';

/** Serves the tracker API with an in-memory peer store. */
export async function startTracker(config: TrackerConfig, deps: {
  logger: Logger; originClient?: OriginClient; now?: () => number;
  /** Resolves `origins.dns`; node:dns by default. */
  dnsResolver?: MemberResolver;
}): Promise<{ url: string; close(): Promise<void> }> {
  const service = createHttpService({ name: 'tracker', logger: deps.logger, shutdownTimeoutMs: config.shutdownTimeoutMs });
  const store = createPeerStore({ ttlMs: config.peerTtlMs, ...(deps.now ? { now: deps.now } : {}) });
  const origins = deps.originClient ?? createOriginClient({
    origins: createMembership({ what: 'origins', ...config.origins, resolver: deps.dnsResolver, logger: deps.logger }), replicas: config.origins.replicas, logger: deps.logger,
  });
  const announces = new Counter({ name: 'krill_tracker_announces_total', help: 'Announces by whether the peer was complete.', labelNames: ['complete'], registers: [service.metrics] });
  new Gauge({ name: 'krill_tracker_peers', help: 'Peers tracked.', registers: [service.metrics], collect() { this.set(store.size().peers); } });
  new Gauge({ name: 'krill_tracker_blobs', help: 'Blobs with at least one peer.', registers: [service.metrics], collect() { this.set(store.size().blobs); } });
  const announce = createAnnounceHandler({ store, maxPeers: config.maxPeers, announces });
  registerTrackerRoutes(service.app, { store, origins, intervalMs: config.announceIntervalMs, announce });
  const violations = new Counter({ name: 'krill_tracker_stream_violations_total', help: 'Announce stream connections closed for breaking the protocol.', registers: [service.metrics] });
  const streams = serveAnnounceStreams(service.app.server, {
    handle: announce, intervalMs: config.announceIntervalMs, logger: deps.logger, onViolation: () => violations.inc(),
  });
  new Gauge({ name: 'krill_tracker_stream_connections', help: 'Open announce stream connections.', registers: [service.metrics], collect() { this.set(streams.connections()); } });
  const url = await service.listen(config.listen.host, config.listen.port);
  return {
    url,
    close: once(async () => {
      // Streams are long-lived: the server's close would wait on them for the whole shutdown bound.
      streams.close();
      await service.close();
      if (!deps.originClient) await origins.close();
    }),
  };
}
