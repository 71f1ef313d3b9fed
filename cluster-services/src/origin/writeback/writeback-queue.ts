import Database from 'better-sqlite3';
import { Gauge, Counter, type Registry } from 'prom-client';
import { isCategory, type Digest, type Logger } from '@krill/lib';
import type { Backend, BackendRouter } from '../../backend/index.js';
import type { BlobStore } from '../store/blob-store.js';

export interface WritebackOptions {
  /** SQLite file; the queue survives restarts. */
  dbPath: string;
  store: BlobStore;
  router: BackendRouter;
  logger: Logger;
  metrics?: Registry;
  retryMinMs: number;
  retryMaxMs: number;
  concurrency: number;
  /** How often due tasks are looked for when nothing wakes the loop. */
  pollMs?: number;
}

interface Task {
  namespace: string;
  digest: Digest;
  attempts: number;
}

/**
 * The durable write-back queue: every blob an origin accepts is written to its namespace's
 * backend by a task kept in SQLite until it succeeds, retried with exponential backoff and
 * resumed after a restart. While a task is pending its blob is pinned in the store. Where the
 * backend keeps metainfo sidecars, the blob's metainfo is written beside it too (after the blob,
 * and only when missing), so an origin fetching it on a miss can serve pieces as they arrive; a
 * sidecar that fails to write is logged and not retried, since it is an optimisation.
 */
export interface WritebackQueue {
  /** Queues a write-back, due after `delayMs`; an existing task for the pair keeps the earlier time. */
  enqueue(namespace: string, digest: Digest, delayMs?: number): void;
  /** Tasks not yet done. */
  pending(): number;
  /** Resolves when no task is due now or running (for tests and draining). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export function createWritebackQueue(o: WritebackOptions): WritebackQueue {
  const db = new Database(o.dbPath);
  db.pragma('journal_mode = WAL');
  // FULL: an acknowledged upload's task must survive a power cut, not only a process crash.
  db.pragma('synchronous = FULL');
  db.exec(`CREATE TABLE IF NOT EXISTS writeback (
    namespace TEXT NOT NULL, digest TEXT NOT NULL, not_before INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, PRIMARY KEY (namespace, digest))`);
  const insert = db.prepare(`INSERT INTO writeback (namespace, digest, not_before) VALUES (?, ?, ?)
    ON CONFLICT (namespace, digest) DO UPDATE SET not_before = MIN(not_before, excluded.not_before)`);
  const due = db.prepare('SELECT namespace, digest, attempts FROM writeback WHERE not_before <= ? ORDER BY not_before LIMIT ?');
  const remove = db.prepare('DELETE FROM writeback WHERE namespace = ? AND digest = ?');
  const retry = db.prepare('UPDATE writeback SET not_before = ?, attempts = attempts + 1, last_error = ? WHERE namespace = ? AND digest = ?');
  const count = db.prepare('SELECT COUNT(*) AS n FROM writeback');
  const all = db.prepare('SELECT namespace, digest FROM writeback');
  const forDigest = db.prepare('SELECT COUNT(*) AS n FROM writeback WHERE digest = ?');
  const log = o.logger;

  if (o.metrics) {
    new Gauge({ name: 'krill_origin_writeback_pending', help: 'Write-back tasks not yet done.', registers: [o.metrics], collect() { if (!closed) this.set(pendingCount()); } });
  }
  // result: ok, present (the backend had it), error (will retry), no_route, read_only, missing.
  const results = o.metrics && new Counter({ name: 'krill_origin_writeback_total', help: 'Write-back attempts by result.', labelNames: ['result'], registers: [o.metrics] });

  const pendingCount = () => (count.get() as { n: number }).n;
  const running = new Set<string>();
  let closed = false;
  // Aborts backend calls in flight when the queue closes, so a shutdown does not wait for a GiB upload.
  const stopping = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let idleWaiters: Array<() => void> = [];

  // Pending tasks pin their blobs again after a restart.
  for (const row of all.all() as Task[]) {
    o.store.setPinned(row.digest, true).catch(() => {
      log.error({ digest: row.digest, namespace: row.namespace }, 'write-back task for a blob no longer in the store; dropping it');
      remove.run(row.namespace, row.digest);
    });
  }

  async function finish(t: Task, reason: string): Promise<void> {
    remove.run(t.namespace, t.digest);
    // The same blob may be pending for another namespace (another backend); it stays pinned then.
    if ((forDigest.get(t.digest) as { n: number }).n === 0) await o.store.setPinned(t.digest, false).catch(() => undefined);
    results?.inc({ result: reason });
  }

  /** Writes the blob's metainfo sidecar where the backend keeps them and lacks this one. */
  async function writeSidecar(t: Task, backend: Backend, signal: AbortSignal): Promise<void> {
    if (!backend.putMetainfo || !backend.getMetainfo) return;
    try {
      if (await backend.getMetainfo(t.namespace, t.digest, signal)) return;
      await backend.putMetainfo(t.namespace, t.digest, await o.store.metainfo(t.digest), signal);
    } catch (err) {
      if (signal.aborted) return;
      log.warn({ digest: t.digest, namespace: t.namespace, backend: backend.kind, err: (err as Error).message }, 'writing the metainfo sidecar failed; a miss will fetch this blob whole');
    }
  }

  async function run(t: Task): Promise<void> {
    const backend = o.router.tryRoute(t.namespace);
    if (!backend) {
      log.warn({ digest: t.digest, namespace: t.namespace }, 'no backend rule matches the namespace; write-back dropped');
      return finish(t, 'no_route');
    }
    if (backend.readOnly) {
      log.warn({ digest: t.digest, namespace: t.namespace, backend: backend.kind }, 'backend is read-only; write-back dropped');
      return finish(t, 'read_only');
    }
    const signal = stopping.signal;
    try {
      try {
        await backend.stat(t.namespace, t.digest, signal);
        await writeSidecar(t, backend, signal);
        return await finish(t, 'present');
      } catch (err) {
        if (!isCategory(err, 'NotFound')) throw err;
      }
      let size: number;
      try {
        size = (await o.store.stat(t.digest)).size;
      } catch (err) {
        if (!isCategory(err, 'NotFound')) throw err;
        log.error({ digest: t.digest, namespace: t.namespace }, 'write-back task for a blob no longer in the store; dropping it');
        return await finish(t, 'missing');
      }
      await backend.upload(t.namespace, t.digest, await o.store.open(t.digest), size, signal);
      log.info({ digest: t.digest, namespace: t.namespace, backend: backend.kind, size }, 'written back');
      await writeSidecar(t, backend, signal);
      await finish(t, 'ok');
    } catch (err) {
      // Stopped by close: the task stays due and runs again after the restart.
      if (signal.aborted) return;
      const delay = Math.min(o.retryMaxMs, o.retryMinMs * 2 ** Math.min(t.attempts, 30)) * (0.75 + Math.random() / 2);
      retry.run(Date.now() + Math.round(delay), String((err as Error).message), t.namespace, t.digest);
      results?.inc({ result: 'error' });
      log.warn({ digest: t.digest, namespace: t.namespace, err: (err as Error).message, attempt: t.attempts + 1, retryInMs: Math.round(delay) }, 'write-back failed; will retry');
    }
  }

  function pump(): void {
    if (closed) return;
    const free = o.concurrency - running.size;
    const tasks = free > 0 ? (due.all(Date.now(), free + running.size) as Task[]) : [];
    for (const t of tasks) {
      const key = `${t.namespace}\0${t.digest}`;
      if (running.has(key) || running.size >= o.concurrency) continue;
      running.add(key);
      void run(t).finally(() => {
        running.delete(key);
        pump();
      });
    }
    if (running.size === 0 && (due.all(Date.now(), 1) as Task[]).length === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
    clearTimeout(timer);
    timer = setTimeout(pump, o.pollMs ?? 1000);
    timer.unref();
  }

  pump();
  return {
    enqueue(namespace, digest, delayMs = 0) {
      insert.run(namespace, digest, Date.now() + delayMs);
      void o.store.setPinned(digest, true).catch(() => undefined);
      setImmediate(pump);
    },
    pending: pendingCount,
    idle() {
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        setImmediate(pump);
      });
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      stopping.abort();
      while (running.size > 0) await new Promise((r) => setTimeout(r, 20));
      db.close();
    },
  };
}
