import { Agent, request, type Dispatcher } from 'undici';
import {
  UnavailableError, createLiveRing, errorFromBody, isKrillError, toMembership, type Digest, type Logger, type Membership, type Metainfo,
} from '@krill/lib';
import type { PeerInfo } from '../store/peer-store.js';
import { UpgradeRefusedError, connectAnnounceStream, type AnnounceConnection } from '../stream/stream-client.js';
import type { Announce, TrackerClient } from './tracker-client.js';

/**
 * `urls` is a static list or a Membership that follows DNS; the ring is swapped whole when it
 * changes, and the client closes the Membership on close. Announces go over one announce stream
 * per tracker (stream-client.ts), or `POST /announce` to a tracker that refuses the upgrade (or
 * with `stream: false`); metainfo over HTTP.
 */
export function createTrackerClient(o: { urls: readonly string[] | Membership; logger: Logger; timeoutMs?: number; stream?: boolean }): TrackerClient {
  const timeoutMs = o.timeoutMs ?? 5000;
  const streams = new Map<string, AnnounceConnection>();
  // Trackers that answered the upgrade with something else: HTTP for them from then on.
  const httpOnly = new Set<string>();
  const stream = (base: string) => {
    let c = streams.get(base);
    if (!c || c.closed) streams.set(base, (c = connectAnnounceStream(base, { timeoutMs })));
    return c;
  };
  const rings = createLiveRing({ membership: toMembership(o.urls, 'trackers', o.logger), replicas: 1, code: 'ERR_TRACKER_UNAVAILABLE' });
  // Announces are small and frequent: a short timeout lets a dead tracker be skipped quickly.
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });

  async function http<T>(base: string, method: Dispatcher.HttpMethod, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await request(`${base}${path}`, {
      method, dispatcher, ...(signal ? { signal } : {}),
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.body.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    if (res.statusCode >= 400) throw errorFromBody(res.statusCode, json, `tracker ${base} ${path.split('?')[0]}`);
    return json as T;
  }

  async function announceTo(base: string, a: Announce, signal?: AbortSignal): Promise<{ peers: PeerInfo[]; intervalMs: number }> {
    if (o.stream !== false && !httpOnly.has(base)) {
      try {
        return await stream(base).announce({ ...a, origin: a.origin === true }, signal);
      } catch (err) {
        if (!(err instanceof UpgradeRefusedError)) throw err;
        o.logger.info({ url: base, err: err.message }, 'tracker has no announce stream; announcing over HTTP');
        httpOnly.add(base);
      }
    }
    return http(base, 'POST', '/announce', a, signal);
  }

  /** `attempt` on each tracker in rendezvous order for `digest` until one answers. */
  async function call<T>(digest: Digest, attempt: (base: string) => Promise<T>): Promise<T> {
    let last: unknown;
    for (const base of (await rings.get()).ranked(digest)) {
      try {
        return await attempt(base);
      } catch (err) {
        last = err;
        if (isKrillError(err) && err.category !== 'Unavailable') throw err;
        o.logger.debug({ url: base, err: (err as Error).message }, 'tracker failed; trying the next');
      }
    }
    throw new UnavailableError(`no tracker answered: ${(last as Error | undefined)?.message ?? 'none configured'}`, { code: 'ERR_TRACKER_UNAVAILABLE', cause: last });
  }

  return {
    announce: (a: Announce, signal?: AbortSignal) => call(a.digest, (base) => announceTo(base, a, signal)),
    metainfo: (namespace: string, digest: Digest, signal?: AbortSignal) =>
      call(digest, (base) => http<Metainfo>(base, 'GET', `/metainfo?namespace=${encodeURIComponent(namespace)}&digest=${digest}`, undefined, signal)),
    close: () => {
      rings.close();
      for (const c of streams.values()) c.close();
      streams.clear();
      return dispatcher.close();
    },
  };
}
