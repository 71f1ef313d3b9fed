import { mkdir, rm } from 'node:fs/promises';
import { Counter, Gauge, type Registry } from 'prom-client';
import { PeerNode, TokenBucket, UNLIMITED, createMembership, type Digest, type Logger, type MemberResolver, type Metainfo } from '@krill/lib';
import type { BackendRouter } from '../../backend/index.js';
import { createTrackerClient, type TrackerClient } from '../../tracker/index.js';
import type { MissFetcher } from '../server/fetch-on-miss.js';
import type { BlobStore } from '../store/blob-store.js';
import { announceWhileOpen } from './announcer.js';
import type { PeerConfig, TrackersConfig } from './config.js';
import { openSeed, type Seed } from './seed-swarm.js';
import type { OriginSeeder } from './seeder.js';

/** MB as network links count them. */
const MB = 1_000_000;
const EGRESS_BURST_BYTES = 1024 * 1024;
/**
 * Idle swarms are looked for four times per idleMs, so one closes between idleMs and 1.25 idleMs
 * after its last use; never more often than every 25 ms, which only tests' tiny idleMs reach.
 */
const IDLE_CHECKS_PER_PERIOD = 4;
const IDLE_CHECK_MIN_MS = 25;

export interface OriginSeederOptions {
  peer: PeerConfig;
  trackers?: TrackersConfig;
  store: BlobStore;
  fetcher: MissFetcher;
  router: BackendRouter;
  /** Emptied at start: blobs streamed in part before a restart are fetched again. */
  scratchDir: string;
  logger: Logger;
  metrics?: Registry;
  /** Resolves `trackers.dns`; node:dns by default. */
  dnsResolver?: MemberResolver;
}

interface Open {
  seed: Seed;
  lastUse: number;
  /** `swarm.served` already counted into the metric. */
  counted: number;
  /** `swarm.declined` already counted. */
  countedDeclined: number;
  stopAnnouncing: () => void;
}

/** Starts the origin's peer endpoint; see OriginSeeder. */
export async function createOriginSeeder(o: OriginSeederOptions): Promise<OriginSeeder> {
  const log = o.logger;
  await rm(o.scratchDir, { recursive: true, force: true });
  await mkdir(o.scratchDir, { recursive: true });
  // A burst of one piece: what the bucket lets through at once goes into the sockets together,
  // and the kernel interleaves it over every connection. With a second's worth, the first pieces
  // of a swarm all reached their agents 0.4-0.9 s in, together, while agents pass on only whole
  // pieces; one piece at a time, the first arrives 44 ms in at 25 MB/s and is passed on at once
  // (in the lab, agents received 15 MB/s in the run's first second instead of 8.5). A larger
  // piece runs the bucket into debt and still goes out at the rate.
  const egress = o.peer.egressMBps === undefined ? UNLIMITED : new TokenBucket(o.peer.egressMBps * MB, EGRESS_BURST_BYTES);
  const ctx = { store: o.store, fetcher: o.fetcher, router: o.router, egress, scratchDir: o.scratchDir, logger: log };
  const tracker: TrackerClient | undefined = o.trackers && (o.trackers.urls.length > 0 || o.trackers.dns)
    ? createTrackerClient({ urls: createMembership({ what: 'trackers', ...o.trackers, resolver: o.dnsResolver, logger: log }), logger: log })
    : undefined;
  const open = new Map<Digest, Open>();
  const opening = new Map<Digest, Promise<Open | undefined>>();
  let closed = false;

  const served = o.metrics && new Counter({ name: 'krill_origin_p2p_served_bytes_total', help: 'Bytes of pieces the origin served to peers.', registers: [o.metrics], collect() { for (const x of open.values()) count(x); } });
  if (o.metrics) new Gauge({ name: 'krill_origin_seed_swarms', help: 'Seed swarms open.', registers: [o.metrics], collect() { this.set(open.size); } });
  const declined = o.metrics && new Counter({ name: 'krill_origin_p2p_declined_total', help: 'Piece requests declined because a peer holds the piece (the asker gets it there).', registers: [o.metrics], collect() { for (const x of open.values()) count(x); } });
  const count = (x: Open) => {
    const now = x.seed.swarm.served;
    if (now > x.counted) served?.inc(now - x.counted);
    x.counted = now;
    const d = x.seed.swarm.declined;
    if (d > x.countedDeclined) declined?.inc(d - x.countedDeclined);
    x.countedDeclined = d;
  };

  const node = await PeerNode.start({
    host: o.peer.host, port: o.peer.port,
    resolve: async (digest, namespace) => (await ensureOpen(namespace, digest as Digest))?.seed.swarm,
  });
  const endpoint = { ip: o.peer.advertise ?? o.peer.host, port: node.port, peerId: node.peerId.toString('hex') };
  node.on('peer', (digest: Digest) => {
    const x = open.get(digest);
    if (x) x.lastUse = Date.now();
  });

  /** The open seed for the digest, or one opened now (once for concurrent callers). */
  function ensureOpen(namespace: string, digest: Digest): Promise<Open | undefined> {
    const x = open.get(digest);
    if (x) return Promise.resolve(x);
    let p = opening.get(digest);
    if (!p) {
      p = openSeed(ctx, namespace, digest, (seed, err) => {
        log.warn({ digest, namespace, err: (err as Error).message }, 'seeding a blob streamed from the backend failed; closing its swarm');
        void closeSeed(seed);
      }).then((seed) => (seed ? track(seed) : undefined)).finally(() => opening.delete(digest));
      opening.set(digest, p);
    }
    return p;
  }

  function track(seed: Seed): Open | undefined {
    if (closed) {
      seed.swarm.close();
      void seed.dispose();
      return undefined;
    }
    const { digest, namespace, swarm } = seed;
    swarm.on('warning', (err: Error) => log.warn({ digest, err: err.message }, 'seed swarm'));
    // The whole blob did not hash to its digest: never serve it again from here.
    swarm.on('error', (err: Error) => {
      log.error({ digest, err: err.message }, 'seeded blob is corrupt; closing its swarm');
      void closeSeed(seed);
    });
    // The origin will have every piece (it fetches the rest from its backend), so to the
    // tracker it is a seeder from the start.
    const stopAnnouncing = tracker
      ? announceWhileOpen(tracker, { digest, namespace, peerId: endpoint.peerId, ip: endpoint.ip, port: endpoint.port, complete: true, origin: true }, log)
      : () => undefined;
    const x: Open = { seed, lastUse: Date.now(), counted: 0, countedDeclined: 0, stopAnnouncing };
    open.set(digest, x);
    node.register(digest, namespace, swarm);
    log.debug({ digest, namespace, arriving: seed.arriving }, 'seed swarm opened');
    return x;
  }

  async function closeSeed(seed: Seed): Promise<void> {
    const x = open.get(seed.digest);
    if (x?.seed !== seed) return;
    open.delete(seed.digest);
    if (node.swarmOf(seed.digest) === seed.swarm) node.unregister(seed.digest);
    x.stopAnnouncing();
    count(x);
    seed.swarm.close();
    await seed.dispose().catch((err: unknown) => log.warn({ digest: seed.digest, err: (err as Error).message }, 'releasing a seed swarm failed'));
  }

  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const x of open.values()) {
      if (x.seed.swarm.served !== x.counted) {
        x.lastUse = now;
        count(x);
      } else if (x.seed.swarm.uploading) {
        // A piece on its way to a slow peer, or a request waiting: in use, though nothing finished.
        x.lastUse = now;
      }
      if (!x.seed.arriving && now - x.lastUse >= o.peer.idleMs) void closeSeed(x.seed);
    }
  }, Math.max(IDLE_CHECK_MIN_MS, o.peer.idleMs / IDLE_CHECKS_PER_PERIOD));
  sweeper.unref();
  log.info({ ...endpoint, trackers: o.trackers?.urls.length ?? 0, trackersDns: o.trackers?.dns?.name }, 'origin seeder listening');

  return {
    endpoint,
    async metainfo(namespace: string, digest: Digest): Promise<Metainfo> {
      const x = open.get(digest);
      if (x) return x.seed.swarm.file.metainfo;
      const stored = await o.store.stat(digest).then(() => true, () => false);
      if (!stored) {
        const opened = await ensureOpen(namespace, digest);
        if (opened) return opened.seed.swarm.file.metainfo;
        await o.fetcher.ensure(namespace, digest);
      }
      return o.store.metainfo(digest);
    },
    openSwarms: () => open.size,
    async close() {
      closed = true;
      clearInterval(sweeper);
      await Promise.allSettled([...opening.values()]);
      await Promise.all([...open.values()].map((x) => closeSeed(x.seed)));
      await node.close();
      await tracker?.close();
    },
  };
}
