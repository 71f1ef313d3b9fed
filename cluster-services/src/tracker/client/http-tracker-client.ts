import { Agent, request, type Dispatcher } from 'undici';
import {
  UnavailableError, createLiveRing, errorFromBody, isKrillError, toMembership, type Digest, type Logger, type Membership, type Metainfo,
} from '@krill/lib';
import type { PeerInfo } from '../store/peer-store.js';
import type { Announce, TrackerClient } from './tracker-client.js';

/**
 * `urls` is a static list or a Membership that follows DNS; the ring is swapped whole when it
 * changes, and the client closes the Membership on close.
 */
export function createTrackerClient(o: { urls: readonly string[] | Membership; logger: Logger; timeoutMs?: number }): TrackerClient {
  const rings = createLiveRing({ membership: toMembership(o.urls, 'trackers', o.logger), replicas: 1, code: 'ERR_TRACKER_UNAVAILABLE' });
  // Announces are small and frequent: a short timeout lets a dead tracker be skipped quickly.
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, headersTimeout: o.timeoutMs ?? 5000, bodyTimeout: o.timeoutMs ?? 5000 });

  async function call<T>(digest: Digest, method: Dispatcher.HttpMethod, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let last: unknown;
    for (const base of (await rings.get()).ranked(digest)) {
      try {
        const res = await request(`${base}${path}`, {
          method, dispatcher, ...(signal ? { signal } : {}),
          ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        });
        const text = await res.body.text();
        const json = text ? (JSON.parse(text) as unknown) : undefined;
        if (res.statusCode >= 400) throw errorFromBody(res.statusCode, json, `tracker ${base} ${path.split('?')[0]}`);
        return json as T;
      } catch (err) {
        last = err;
        if (isKrillError(err) && err.category !== 'Unavailable') throw err;
        o.logger.debug({ url: base, err: (err as Error).message }, 'tracker failed; trying the next');
      }
    }
    throw new UnavailableError(`no tracker answered: ${(last as Error | undefined)?.message ?? 'none configured'}`, { code: 'ERR_TRACKER_UNAVAILABLE', cause: last });
  }

  return {
    announce: (a: Announce, signal?: AbortSignal) => call<{ peers: PeerInfo[]; intervalMs: number }>(a.digest, 'POST', '/announce', a, signal),
    metainfo: (namespace: string, digest: Digest, signal?: AbortSignal) =>
      call<Metainfo>(digest, 'GET', `/metainfo?namespace=${encodeURIComponent(namespace)}&digest=${digest}`, undefined, signal),
    close: () => {
      rings.close();
      return dispatcher.close();
    },
  };
}
