import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { sha256, silentLogger, type Digest } from '@krill/lib';
import { createBackendRouter, createFsBackend, type BackendRuleConfig, type BackendRouter } from '../../backend/index.js';
import type { BlobStore } from '../store/blob-store.js';
import { createBlobStore } from '../store/fs-blob-store.js';
import { createWritebackQueue, type WritebackQueue } from './writeback-queue.js';

const logger = silentLogger();
let open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const o of open.reverse()) await o.close();
  open = [];
});

const blob = (n: number) => { const b = randomBytes(n); return { b, d: sha256(b) }; };
const has = (root: string, ns: string, d: Digest) => createFsBackend({ root, logger }).stat(ns, d).then(() => true, () => false);

async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A store, a router and a queue over `root`, as an origin opens them at start. */
async function openAll(root: string, rules: BackendRuleConfig[], capacityBytes = 1e9) {
  const store = await createBlobStore({ dir: join(root, 'store'), capacityBytes, logger });
  const router: BackendRouter = createBackendRouter({ rules, registries: {}, logger });
  const metrics = new Registry();
  const queue: WritebackQueue = createWritebackQueue({
    dbPath: join(root, 'store', 'origin.db'), store, router, logger, metrics, retryMinMs: 20, retryMaxMs: 100, concurrency: 2, pollMs: 20,
  });
  open.push(store, router, queue);
  return { store, router, queue, metrics };
}

async function put(store: BlobStore, n: number) {
  const x = blob(n);
  await store.put(x.d, Readable.from([x.b]), { pin: true });
  return x;
}

describe('write-back queue', () => {
  it('keeps tasks and pins across a restart, then retries a failing backend until it takes the blob', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-wb-'));
    const backend = join(root, 'backend');
    // A file where the backend's directory should be makes every write fail.
    writeFileSync(backend, 'in the way');
    const rules = [{ namespace: '.*', fs: { root: backend } }];
    const first = await openAll(root, rules, 3000);
    const a = await put(first.store, 1000);
    first.queue.enqueue('team/app', a.d);
    await new Promise((r) => setTimeout(r, 150));
    expect(first.queue.pending()).toBe(1);
    expect(await first.metrics.getSingleMetricAsString('krill_origin_writeback_total')).toMatch(/result="error"[^}]*\} [1-9]/);
    for (const o of open.splice(0).reverse()) await o.close();

    // Reopened: the task is still there and its blob still pinned, so filling the store cannot evict it.
    const second = await openAll(root, rules, 3000);
    expect(second.queue.pending()).toBe(1);
    await put(second.store, 1000);
    await second.store.put(sha256(Buffer.alloc(1000)), Readable.from([Buffer.alloc(1000)]));
    const c = blob(1000);
    await second.store.put(c.d, Readable.from([c.b]));
    expect((await second.store.stat(a.d)).size).toBe(1000);
    expect(await second.store.delete(a.d).catch((e: { code: string }) => e.code)).toBe('ERR_BLOB_PINNED');

    rmSync(backend);
    await eventually(() => has(backend, 'team/app', a.d));
    await eventually(async () => second.queue.pending() === 0);
    // Written back: the blob is evictable again.
    await second.store.delete(a.d);
  });

  it('skips the upload when the backend already has the blob, and waits for a delayed task', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-wb-'));
    const backend = join(root, 'backend');
    const { store, queue, metrics } = await openAll(root, [{ namespace: '.*', fs: { root: backend } }]);
    const a = await put(store, 500);
    await createFsBackend({ root: backend, logger }).upload('team/app', a.d, Readable.from([a.b]), 500);
    queue.enqueue('team/app', a.d);
    await eventually(async () => queue.pending() === 0);
    expect(await metrics.getSingleMetricAsString('krill_origin_writeback_total')).toMatch(/result="present"[^}]*\} 1/);

    const b = await put(store, 500);
    queue.enqueue('team/app', b.d, 400);
    await new Promise((r) => setTimeout(r, 200));
    expect(await has(backend, 'team/app', b.d)).toBe(false);
    await eventually(() => has(backend, 'team/app', b.d));
  });

  it('drops tasks with no route or a read-only backend, with the blob unpinned', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-wb-'));
    const { store, queue, metrics } = await openAll(root, [
      { namespace: '^mirror/', http: { downloadUrl: 'http://127.0.0.1:9/{digest}' } },
      { namespace: '^team/', fs: { root: join(root, 'backend') } },
    ]);
    const a = await put(store, 100);
    const b = await put(store, 100);
    queue.enqueue('elsewhere/app', a.d);
    queue.enqueue('mirror/app', b.d);
    await eventually(async () => queue.pending() === 0);
    const text = await metrics.getSingleMetricAsString('krill_origin_writeback_total');
    expect(text).toMatch(/result="no_route"[^}]*\} 1/);
    expect(text).toMatch(/result="read_only"[^}]*\} 1/);
    await store.delete(a.d);
    await store.delete(b.d);
  });

  it('drops a task whose blob left the store instead of retrying it forever', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-wb-'));
    const { store, queue, metrics } = await openAll(root, [{ namespace: '.*', fs: { root: join(root, 'backend') } }]);
    const a = blob(100);
    queue.enqueue('team/app', a.d);
    await eventually(async () => queue.pending() === 0);
    expect(await metrics.getSingleMetricAsString('krill_origin_writeback_total')).toMatch(/result="missing"[^}]*\} 1/);
    expect(await store.stat(a.d).catch((e: { code: string }) => e.code)).toBe('ERR_BLOB_NOT_FOUND');
  });
});
