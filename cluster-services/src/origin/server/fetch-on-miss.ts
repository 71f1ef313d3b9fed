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
}

export function createMissFetcher(o: { store: BlobStore; router: BackendRouter; logger: Logger; fetches?: Counter }): MissFetcher {
  const inflight = new Map<string, Promise<void>>();
  const missing = (d: Digest, ns?: string) =>
    new NotFoundError(`blob ${d} is not on this origin${ns === undefined ? '' : ` nor in the backend for namespace ${JSON.stringify(ns)}`}`, { code: 'ERR_BLOB_NOT_FOUND' });

  async function fetchOnce(namespace: string, digest: Digest): Promise<void> {
    const backend = o.router.tryRoute(namespace);
    if (!backend) throw missing(digest, namespace);
    const started = Date.now();
    try {
      const { size } = await backend.stat(namespace, digest);
      const body = await backend.download(namespace, digest);
      await o.store.put(digest, body, { size });
      o.fetches?.inc({ result: 'ok' });
      o.logger.info({ digest, namespace, backend: backend.kind, size, ms: Date.now() - started }, 'fetched on miss');
    } catch (err) {
      o.fetches?.inc({ result: (err as { category?: string }).category ?? 'error' });
      if ((err as { category?: string }).category === 'NotFound') throw missing(digest, namespace);
      throw err;
    }
  }

  return {
    async ensure(namespace, digest) {
      try {
        await o.store.stat(digest);
        return;
      } catch {
        // Not here: fetch below.
      }
      const key = `${namespace}\0${digest}`;
      let p = inflight.get(key);
      if (!p) {
        p = fetchOnce(namespace, digest).finally(() => inflight.delete(key));
        inflight.set(key, p);
      }
      await p;
    },
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
