import type { Counter } from 'prom-client';
import { NotFoundError, type Digest, type Logger } from '@krill/lib';
import type { BackendRouter } from '../../backend/index.js';
import type { BlobStore } from '../store/blob-store.js';

/**
 * Fetches a blob missing from the store from its namespace's backend, verified into the store.
 * Concurrent requests for the same blob in the same namespace share one download; requests
 * under another namespace fetch on their own, since that namespace may route to another backend.
 * The download runs to its end even when the request that started it goes away, because other
 * requests may be waiting for it, and the blob is then in the store for the next reader.
 */
export interface MissFetcher {
  /** Ensures the blob is in the store. NotFound (ERR_BLOB_NOT_FOUND) when no backend has it. */
  ensure(namespace: string, digest: Digest, signal?: AbortSignal): Promise<void>;
  /** Size of the blob in the store, or else in the backend, without fetching it. */
  size(namespace: string | undefined, digest: Digest): Promise<number>;
  /**
   * Runs `fetch` as the one download of the blob in this namespace, so that `ensure` callers
   * meanwhile wait for it instead of downloading it again (the P2P seeder streams a blob from
   * the backend piece by piece this way); `fetch` must have put the blob into the store when it
   * resolves. When a download is already in flight `fetch` is not called: `started` is false and
   * `done` is that download. A NotFound from `fetch` becomes ERR_BLOB_NOT_FOUND, as for `ensure`.
   */
  share(namespace: string, digest: Digest, fetch: () => Promise<void>): { started: boolean; done: Promise<void> };
}

export function createMissFetcher(o: { store: BlobStore; router: BackendRouter; logger: Logger; fetches?: Counter }): MissFetcher {
  const inflight = new Map<string, Promise<void>>();
  const missing = (d: Digest, ns?: string) =>
    new NotFoundError(`blob ${d} is not on this origin${ns === undefined ? '' : ` nor in the backend for namespace ${JSON.stringify(ns)}`}`, { code: 'ERR_BLOB_NOT_FOUND' });

  /** Counts and logs one download, and names a NotFound for the caller. */
  async function counted(namespace: string, digest: Digest, how: string, fetch: () => Promise<void>): Promise<void> {
    const started = Date.now();
    try {
      await fetch();
      o.fetches?.inc({ result: 'ok' });
      o.logger.info({ digest, namespace, how, ms: Date.now() - started }, 'fetched on miss');
    } catch (err) {
      o.fetches?.inc({ result: (err as { category?: string }).category ?? 'error' });
      if ((err as { category?: string }).category === 'NotFound') throw missing(digest, namespace);
      throw err;
    }
  }

  async function fetchWhole(namespace: string, digest: Digest): Promise<void> {
    const backend = o.router.tryRoute(namespace);
    if (!backend) throw missing(digest, namespace);
    const { size } = await backend.stat(namespace, digest);
    const body = await backend.download(namespace, digest);
    await o.store.put(digest, body, { size });
  }

  /** The download in flight for the pair, or `fetch` started as it. */
  function shared(namespace: string, digest: Digest, how: string, fetch: () => Promise<void>): { started: boolean; done: Promise<void> } {
    const key = `${namespace}\0${digest}`;
    const running = inflight.get(key);
    if (running) return { started: false, done: running };
    const done = counted(namespace, digest, how, fetch).finally(() => inflight.delete(key));
    inflight.set(key, done);
    return { started: true, done };
  }

  return {
    async ensure(namespace, digest) {
      try {
        await o.store.stat(digest);
        return;
      } catch {
        // Not here: fetch below.
      }
      await shared(namespace, digest, 'whole', () => fetchWhole(namespace, digest)).done;
    },
    share: (namespace, digest, fetch) => shared(namespace, digest, 'pieces', fetch),
    async size(namespace, digest) {
      try {
        return (await o.store.stat(digest)).size;
      } catch {
        if (namespace === undefined) throw missing(digest);
      }
      const backend = o.router.tryRoute(namespace);
      if (!backend) throw missing(digest, namespace);
      try {
        return (await backend.stat(namespace, digest)).size;
      } catch (err) {
        if ((err as { category?: string }).category === 'NotFound') throw missing(digest, namespace);
        throw err;
      }
    },
  };
}
