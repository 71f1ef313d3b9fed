import { request, type Dispatcher } from 'undici';
import type { Digest, HashRing, Logger } from '@krill/lib';
import type { BlobStore } from '../store/blob-store.js';

/**
 * Copies a blob this origin accepted to the other owners on the ring, each as a replica (which
 * queues only a delayed, backup write-back). A failed copy is logged and counted, never fatal:
 * the blob is durable here and in the write-back queue.
 */
export async function replicate(o: {
  digest: Digest; namespace: string; self: string; ring: HashRing; store: BlobStore; dispatcher: Dispatcher; logger: Logger;
  onResult?: (ok: boolean) => void; signal?: AbortSignal;
}): Promise<void> {
  const targets = o.ring.owners(o.digest).filter((u) => u !== o.self);
  await Promise.all(targets.map(async (target) => {
    try {
      const { size } = await o.store.stat(o.digest);
      const url = `${target}/blobs/${o.digest}?namespace=${encodeURIComponent(o.namespace)}&replica=1`;
      const res = await request(url, {
        method: 'PUT', dispatcher: o.dispatcher, body: await o.store.open(o.digest), ...(o.signal ? { signal: o.signal } : {}),
        headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' },
      });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
      o.onResult?.(true);
      o.logger.debug({ digest: o.digest, peer: target }, 'replicated');
    } catch (err) {
      o.onResult?.(false);
      o.logger.warn({ digest: o.digest, peer: target, err: (err as Error).message }, 'replication failed');
    }
  }));
}
