import type { Digest, Logger } from '@krill/lib';
import type { OriginClient } from '@krill/cluster-services';

/** An origin's peer endpoint changes only when it restarts; a minute bounds a stale answer. */
const TTL_MS = 60_000;
/** An origin that did not answer is asked again after this, not on every tick of every download. */
const FAILED_TTL_MS = 5000;
/** `/peer` is a tiny answer; an origin that takes longer is treated as down. */
const TIMEOUT_MS = 3000;

/**
 * The peer endpoints of a blob's owner origins, from each origin's peer endpoint lookup, cached
 * per origin. Origins that do not answer (down, or running without a peer endpoint) are left out.
 */
export function createOriginPeers(o: { origins: OriginClient; logger: Logger }): (digest: Digest) => Promise<Array<{ ip: string; port: number }>> {
  const cache = new Map<string, { at: number; peer: { ip: string; port: number } | undefined }>();

  async function lookup(url: string): Promise<{ ip: string; port: number } | undefined> {
    const hit = cache.get(url);
    if (hit && Date.now() - hit.at < (hit.peer ? TTL_MS : FAILED_TTL_MS)) return hit.peer;
    let peer: { ip: string; port: number } | undefined;
    const bound = new AbortController();
    const timer = setTimeout(() => bound.abort(), TIMEOUT_MS);
    try {
      const { ip, port } = await o.origins.peerEndpoint(url, bound.signal);
      peer = { ip, port };
    } catch (err) {
      o.logger.debug({ url, err: (err as Error).message }, 'origin peer endpoint lookup failed');
    }
    clearTimeout(timer);
    cache.set(url, { at: Date.now(), peer });
    return peer;
  }

  return async (digest) => {
    const found = await Promise.all(o.origins.owners(digest).map(lookup));
    return found.filter((p): p is { ip: string; port: number } => p !== undefined);
  };
}
