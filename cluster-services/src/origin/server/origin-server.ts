import { join } from 'node:path';
import { Agent } from 'undici';
import { Counter, Gauge } from 'prom-client';
import { createHashRing, createHttpService, createMembership, once, type HashRing, type Logger, type MemberResolver } from '@krill/lib';
import { createBackendRouter } from '../../backend/index.js';
import type { OriginConfig } from '../config.js';
import { createBlobStore } from '../store/fs-blob-store.js';
import { createWritebackQueue } from '../writeback/writeback-queue.js';
import { createOriginSeeder } from '../seeder/origin-seeder.js';
import type { OriginSeeder, PeerEndpoint } from '../seeder/seeder.js';
import { clusterMembers } from './cluster-members.js';
import { createMissFetcher } from './fetch-on-miss.js';
import { replicate } from './replicator.js';
import { registerOriginRoutes } from './routes.js';

export interface RunningOrigin {
  /** The base URL this origin listens on (or advertises). */
  url: string;
  /**
   * Sets the ring membership: the base URLs of every origin, this one included (with
   * `cluster.dns`, the static part the resolved origins are added to). Lets tests and the
   * devcluster start origins on port 0 and introduce them to each other afterwards.
   */
  setCluster(origins: string[]): void;
  /** The seeder's peer endpoint (as `GET /peer` answers), when `peer` is configured. */
  peer?: PeerEndpoint;
  close(): Promise<void>;
}

/**
 * Opens the store and the write-back queue, starts the P2P seeder when `peer` is configured,
 * then serves the origin's blob API.
 */
export async function startOrigin(config: OriginConfig, deps: {
  logger: Logger;
  /** Resolves `cluster.dns` and `trackers.dns`; node:dns by default. */
  dnsResolver?: MemberResolver;
}): Promise<RunningOrigin> {
  const logger = deps.logger;
  const service = createHttpService({ name: 'origin', logger, shutdownTimeoutMs: config.shutdownTimeoutMs });
  const metrics = service.metrics;
  const store = await createBlobStore({ dir: config.store.dir, capacityBytes: config.store.capacityBytes, logger: logger.child({ part: 'store' }) });
  const router = createBackendRouter({ rules: config.backends, registries: config.registries, logger: logger.child({ part: 'backend' }), metrics });
  const writeback = createWritebackQueue({
    dbPath: join(config.store.dir, 'origin.db'), store, router, logger: logger.child({ part: 'writeback' }), metrics,
    retryMinMs: config.writeback.retryMinMs, retryMaxMs: config.writeback.retryMaxMs, concurrency: config.writeback.concurrency,
  });
  new Gauge({ name: 'krill_origin_store_bytes', help: 'Bytes of verified blobs in the store.', registers: [metrics], collect() { this.set(store.usedBytes()); } });
  new Gauge({ name: 'krill_origin_store_blobs', help: 'Verified blobs in the store.', registers: [metrics], collect() { this.set(store.index.count); } });
  const fetches = new Counter({ name: 'krill_origin_fetch_on_miss_total', help: 'Blobs fetched from a backend on a miss, by result.', labelNames: ['result'], registers: [metrics] });
  const replications = new Counter({ name: 'krill_origin_replications_total', help: 'Copies to other owners, by result.', labelNames: ['result'], registers: [metrics] });
  const fetcher = createMissFetcher({ store, router, logger, fetches });
  let seeder: OriginSeeder | undefined;
  if (config.peer) {
    try {
      seeder = await createOriginSeeder({
        peer: config.peer, trackers: config.trackers, store, fetcher, router, metrics, ...(deps.dnsResolver ? { dnsResolver: deps.dnsResolver } : {}),
        // Under the store's directory: the same filesystem, so the store's copy is a local one.
        scratchDir: join(config.store.dir, 'seeding'), logger: logger.child({ part: 'seeder' }),
      });
    } catch (err) {
      await writeback.close();
      await router.close();
      throw err;
    }
  }
  // Replication streams whole blobs to peers; keep-alive connections are reused between blobs.
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 60_000, bodyTimeout: 300_000 });
  // Copies still running at close are cut off: the blob is durable here and in the write-back queue.
  const stopping = new AbortController();
  const copying = new Set<Promise<void>>();

  let self = config.advertiseUrl ?? '';
  let bound = '';
  let ring: HashRing | undefined;
  // This origin's name on the ring: `self`, or the resolved URL that is this origin (see clusterMembers).
  let onRing = self;
  let fixed = config.cluster.origins;
  const dns = config.cluster.dns && createMembership({ what: 'origins', dns: config.cluster.dns, resolver: deps.dnsResolver, logger });
  const rebuild = () => {
    if (!dns) {
      ring = createHashRing({ nodes: fixed.length > 0 ? fixed : [self], replicas: config.cluster.replicas });
      return;
    }
    const members = clusterMembers([...fixed, ...dns.current()], { self, bound, listenHost: config.listen.host });
    onRing = members.self;
    ring = createHashRing({ nodes: members.nodes, replicas: config.cluster.replicas });
  };
  const setCluster = (origins: string[]) => {
    fixed = origins;
    rebuild();
  };

  registerOriginRoutes(service.app, {
    store, writeback, fetcher, logger, ...(seeder ? { seeder } : {}),
    ring: () => ring!,
    replicaDelayMs: config.writeback.replicaDelayMs,
    replicate: (namespace, digest) => {
      const p = replicate({
        digest, namespace, self: onRing, ring: ring!, store, dispatcher, logger, signal: stopping.signal,
        onResult: (ok) => replications.inc({ result: ok ? 'ok' : 'error' }),
      }).finally(() => copying.delete(p));
      copying.add(p);
    },
  });

  let url: string;
  try {
    url = await service.listen(config.listen.host, config.listen.port);
  } catch (err) {
    dns?.close();
    await seeder?.close();
    await writeback.close();
    await router.close();
    throw err;
  }
  if (self === '') self = url;
  bound = url;
  onRing = self;
  // The first lookup is waited for (bounded by the resolver's timeouts), so the ring starts
  // with the origins DNS knows; later answers swap the ring whole.
  await dns?.refresh();
  dns?.subscribe(rebuild);
  setCluster(config.cluster.origins);
  logger.info({ url: self, origins: ring!.nodes, replicas: ring!.replicas }, 'origin ready');
  return {
    url: self,
    setCluster,
    ...(seeder ? { peer: seeder.endpoint } : {}),
    close: once(async () => {
      dns?.close();
      await service.close();
      await seeder?.close();
      stopping.abort();
      await Promise.all(copying);
      await writeback.close();
      await router.close();
      await dispatcher.close();
      await store.close();
    }),
  };
}
