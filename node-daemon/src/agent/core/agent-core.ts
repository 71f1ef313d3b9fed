import { createReadStream } from 'node:fs';
import {
  CanceledError, PeerNode, TokenBucket, UNLIMITED, UnavailableError, createMembership, isCategory, once,
  type Digest, type Logger, type MemberResolver, type Metainfo, type Pacer, type TrackersRefConfig,
} from '@krill/lib';
import { createOriginClient, createTrackerClient, type OriginClient, type TrackerClient } from '@krill/cluster-services';
import type { Agent, BlobHandle, BytesBySource } from '../agent.js';
import type { BlobCache } from '../blob-cache.js';
import { openBlobCache } from '../cache/fs-blob-cache.js';
import type { AgentConfig } from '../config.js';
import { Download } from './download.js';
import { createCacheSeeder } from './cache-seeder.js';
import { createOriginPeers } from './origin-peers.js';
import { pieceReader } from './piece-reader.js';

/** `p`, or a rejection with Canceled as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined, digest: Digest): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new CanceledError(`fetch of ${digest} canceled`));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CanceledError(`fetch of ${digest} canceled`));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export interface AgentDeps {
  logger: Logger;
  /** Injected for tests; otherwise built from the config. */
  tracker?: TrackerClient;
  origins?: OriginClient;
  /** Resolves `origins.dns` and `trackers.dns`; node:dns by default. */
  dnsResolver?: MemberResolver;
}

const MB = 1e6;
/** A token bucket's burst: a quarter second of traffic, at least one 4 MiB piece, keeps the pace smooth. */
const burstFor = (rate: number) => Math.max(rate / 4, 4 * 1024 * 1024);

/** Starts the agent core: the peer endpoint, the cache, and the downloads (see Agent). */
export async function createAgent(config: AgentConfig, deps: AgentDeps): Promise<Agent> {
  const log = deps.logger;
  const cache: BlobCache = openBlobCache({ dir: config.cache.dir, capacityBytes: config.cache.capacityBytes, logger: log });
  const members = (what: string, c: TrackersRefConfig) => createMembership({ what, ...c, resolver: deps.dnsResolver, logger: log });
  const origins = deps.origins ?? createOriginClient({ origins: members('origins', config.origins), replicas: config.origins.replicas, logger: log, missTimeoutMs: config.metainfoTimeoutMs });
  const hasTrackers = config.trackers.urls.length > 0 || config.trackers.dns !== undefined;
  const tracker = deps.tracker ?? (hasTrackers ? createTrackerClient({ urls: members('trackers', config.trackers), logger: log }) : undefined);
  const pacer = (mbps: number | undefined): Pacer => (mbps === undefined ? UNLIMITED : new TokenBucket(mbps * MB, burstFor(mbps * MB)));
  const ingress = pacer(config.limits.ingressMBps);
  const egress = pacer(config.limits.egressMBps);
  const seeder = createCacheSeeder({ cache, egress, maxPeers: config.p2p.maxConnections, idleMs: config.seedMs, logger: log });
  const node = await PeerNode.start({ host: config.peer.host, port: config.peer.port, resolve: seeder.resolve });
  seeder.attach(node);
  const self = { ip: config.peer.advertise ?? config.peer.host, port: node.port, peerId: node.peerId.toString('hex') };
  const originPeers = createOriginPeers({ origins, logger: log });
  const downloads = new Map<Digest, Download>();
  const totals = { received: { peers: 0, origins: 0, originHttp: 0 } as BytesBySource, served: 0, downloads: 0 };

  async function metainfo(namespace: string, digest: Digest): Promise<Metainfo> {
    // An explicit controller and timer: Node 20 may collect a signal made by AbortSignal.any
    // over AbortSignal.timeout before it fires, and the bound would then never apply.
    const bound = new AbortController();
    const timer = setTimeout(() => bound.abort(new UnavailableError(`metainfo of ${digest} took longer than ${config.metainfoTimeoutMs} ms`, { code: 'ERR_AGENT_UNAVAILABLE' })), config.metainfoTimeoutMs);
    try {
      if (tracker) {
        try {
          return await tracker.metainfo(namespace, digest, bound.signal);
        } catch (err) {
          // The tracker asked the origins: their NotFound or refusal is final. Only an unreachable
          // tracker sends us to the origins ourselves.
          if (!isCategory(err, 'Unavailable') || bound.signal.aborted) throw err;
          log.warn({ digest, err: (err as Error).message }, 'no tracker answered; asking the origins for the metainfo');
        }
      }
      return await origins.metainfo(namespace, digest, bound.signal);
    } catch (err) {
      if (isCategory(err, 'Unavailable') || bound.signal.aborted) {
        const why = bound.signal.aborted ? `nothing answered within ${config.metainfoTimeoutMs} ms` : (err as Error).message;
        throw new UnavailableError(`cannot fetch ${digest}: ${tracker ? 'no tracker and ' : ''}no origin answered (${why})`, { code: 'ERR_AGENT_UNAVAILABLE', cause: err });
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  function account(dl: Download): void {
    dl.once('closed', () => {
      const r = dl.received();
      totals.received.peers += r.peers;
      totals.received.origins += r.origins;
      totals.received.originHttp += r.originHttp;
      totals.served += dl.served();
      if (downloads.get(dl.digest) === dl) downloads.delete(dl.digest);
    });
  }

  async function download(namespace: string, digest: Digest): Promise<Download> {
    const m = await metainfo(namespace, digest);
    // Another open may have started it while the metainfo was on its way.
    const raced = downloads.get(digest);
    if (raced && !raced.error) return raced;
    const dl = new Download(namespace, m, { node, tracker, origins, originPeers, cache, config, self, ingress, egress, logger: log });
    downloads.set(digest, dl);
    account(dl);
    totals.downloads++;
    try {
      await dl.start();
    } catch (err) {
      downloads.delete(digest);
      await dl.close();
      throw err;
    }
    return dl;
  }

  const pending = new Map<Digest, Promise<Download>>();

  function fromCache(digest: Digest): BlobHandle | undefined {
    const hit = cache.lookup(digest);
    if (!hit) return undefined;
    cache.acquire(digest);
    return {
      digest, size: hit.metainfo.length, done: Promise.resolve(),
      read: (range) => createReadStream(hit.path, { ...(range ? { start: range.start, end: range.end } : {}), highWaterMark: 1024 * 1024 }),
      received: () => ({ peers: 0, origins: 0, originHttp: 0 }),
      release: once(async () => cache.release(digest)),
      abandon: once(async () => cache.release(digest)),
    };
  }

  /** Uses (open handles) of each live download, so the last abandoned one can stop it. */
  const uses = new Map<Download, number>();

  function fromDownload(dl: Download): BlobHandle {
    cache.acquire(dl.digest);
    uses.set(dl, (uses.get(dl) ?? 0) + 1);
    const size = dl.metainfo.length;
    let ended = false;
    const end = (abandon: boolean) => {
      if (ended) return;
      ended = true;
      cache.release(dl.digest);
      const left = (uses.get(dl) ?? 1) - 1;
      if (left > 0) {
        uses.set(dl, left);
        return;
      }
      uses.delete(dl);
      if (abandon && !dl.complete && !dl.error) {
        log.info({ digest: dl.digest }, 'download abandoned: its last reader gave up');
        void dl.abandon();
      }
    };
    return {
      digest: dl.digest, size, done: dl.done,
      read: (range, options) => pieceReader(dl.pieceFile, range ?? { start: 0, end: size - 1 }, dl, options?.pooled ?? false),
      received: () => dl.received(),
      release: () => end(false),
      abandon: () => end(true),
    };
  }

  return {
    peerAddress: { ip: self.ip, port: self.port },
    async open(namespace, digest, signal) {
      const live = downloads.get(digest);
      if (live && !live.error && !live.complete) return fromDownload(live);
      const cached = fromCache(digest);
      if (cached) return cached;
      let p = pending.get(digest);
      if (!p) {
        p = download(namespace, digest).finally(() => pending.delete(digest));
        pending.set(digest, p);
      }
      // The download is shared: one caller giving up stops its own wait, not the others'. One
      // that gave up before it got a handle must still not leave the download running for
      // nobody: once every opener has had its turn, an unused download is abandoned.
      try {
        return fromDownload(await abortable(p, signal, digest));
      } catch (err) {
        if (signal?.aborted) {
          void p.then((dl) => setImmediate(() => {
            if (!uses.has(dl) && !dl.complete && !dl.error) {
              log.info({ digest }, 'download abandoned: its opener gave up before it started');
              void dl.abandon();
            }
          }), () => {});
        }
        throw err;
      }
    },
    stats() {
      const r = { ...totals.received };
      let served = totals.served;
      for (const dl of downloads.values()) {
        const x = dl.received();
        r.peers += x.peers;
        r.origins += x.origins;
        r.originHttp += x.originHttp;
        served += dl.served();
      }
      return { received: r, served, downloads: totals.downloads, active: [...downloads.values()].filter((d) => !d.complete).length };
    },
    close: once(async () => {
      await Promise.all([...downloads.values()].map((d) => d.close()));
      await seeder.close();
      await node.close();
      if (!deps.tracker) await tracker?.close();
      if (!deps.origins) await origins.close();
    }),
  };
}
