import { request } from 'undici';
import type { Digest, Logger } from '@krill/lib';

/** An origin's peer endpoint changes only when it restarts; a minute bounds a stale answer. */
const TTL_MS = 60_000;
/** An origin that did not answer is asked again after this, not on every tick of every download. */
const FAILED_TTL_MS = 5000;
/** `/peer` is a tiny answer; an origin that takes longer is treated as down. */
const TIMEOUT_MS = 3000;

/**
 * The peer endpoints of a blob's owner origins, from each origin's `GET /peer`, cached per
 * origin. Origins that do not answer (down, or running without a peer endpoint) are left out.
 */
export function createOriginPeers(o: { owners: (digest: Digest) => string[]; logger: Logger }): (digest: Digest) => Promise<Array<{ ip: string; port: number }>> {
  const cache = new Map<string, { at: number; peer: { ip: string; port: number } | undefined }>();

  async function lookup(url: string): Promise<{ ip: string; port: number } | undefined> {
    const hit = cache.get(url);
    if (hit && Date.now() - hit.at < (hit.peer ? TTL_MS : FAILED_TTL_MS)) return hit.peer;
    let peer: { ip: string; port: number } | undefined;
    try {
      const res = await request(`${url}/peer`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
      const body = (await res.body.json()) as { ip?: unknown; port?: unknown };
      if (res.statusCode === 200 && typeof body.ip === 'string' && typeof body.port === 'number') peer = { ip: body.ip, port: body.port };
    } catch (err) {
      o.logger.debug({ url, err: (err as Error).message }, 'origin peer endpoint lookup failed');
    }
    cache.set(url, { at: Date.now(), peer });
    return peer;
  }

  return async (digest) => {
    const found = await Promise.all(o.owners(digest).map(lookup));
    return found.filter((p): p is { ip: string; port: number } => p !== undefined);
  };
}
