import { PieceFile, Swarm, type Digest, type Logger, type Pacer, type PeerNode, type SwarmResolver } from '@krill/lib';
import type { BlobCache } from '../blob-cache.js';

interface Seed {
  swarm: Swarm;
  file: PieceFile;
  timer: NodeJS.Timeout;
  /** The swarm's bytes served when the idle period began. */
  served: number;
}

/**
 * Seeds whole blobs from the cache to peers that ask for them after the blob's own download has
 * stopped seeding (a peer that learnt of this agent from the tracker a little earlier, or dials
 * it again): the peer node's resolver for digests with no live swarm. Each seed swarm reads the
 * cached file, keeps the blob pinned, and closes after `idleMs` without a new connection or a
 * piece sent, and with no request waiting or piece on its way (a transfer longer than `idleMs`
 * used to be cut off, and its peer left waiting).
 */
export function createCacheSeeder(o: { cache: BlobCache; egress: Pacer; maxPeers: number; idleMs: number; logger: Logger }): {
  resolve: SwarmResolver;
  /** Hands over the node the resolver serves (it is created with the resolver). */
  attach(node: PeerNode): void;
  close(): Promise<void>;
} {
  const seeds = new Map<Digest, Seed>();
  let node: PeerNode | undefined;

  async function stop(digest: Digest): Promise<void> {
    const s = seeds.get(digest);
    if (!s) return;
    seeds.delete(digest);
    clearTimeout(s.timer);
    node?.unregister(digest);
    s.swarm.close();
    await s.file.close();
    o.cache.release(digest);
  }

  const arm = (digest: Digest) => {
    const s = seeds.get(digest);
    if (!s) return;
    clearTimeout(s.timer);
    s.served = s.swarm.served;
    s.timer = setTimeout(() => {
      if (s.swarm.served !== s.served || s.swarm.uploading) arm(digest);
      else void stop(digest);
    }, o.idleMs);
    s.timer.unref();
  };

  return {
    async resolve(digest) {
      const hit = o.cache.lookup(digest as Digest);
      if (!hit) return undefined;
      o.cache.acquire(hit.digest);
      try {
        const file = await PieceFile.seed(hit.path, hit.metainfo);
        const swarm = new Swarm({ file, verified: true, egress: o.egress, maxPeers: o.maxPeers });
        swarm.on('warning', (err: Error) => o.logger.warn({ digest, err: err.message }, 'seed swarm warning'));
        seeds.set(hit.digest, { swarm, file, timer: setTimeout(() => undefined, 0), served: 0 });
        arm(hit.digest);
        o.logger.debug({ digest }, 'seeding a cached blob');
        return swarm;
      } catch (err) {
        o.cache.release(hit.digest);
        throw err;
      }
    },
    attach(n) {
      node = n;
      // A new connection to a seed swarm keeps it open another idle period.
      n.on('peer', (digest: string) => arm(digest as Digest));
    },
    async close() {
      await Promise.all([...seeds.keys()].map(stop));
    },
  };
}
