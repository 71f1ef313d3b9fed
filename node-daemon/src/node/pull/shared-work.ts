import { CanceledError } from '@krill/lib';

interface Entry<T> { promise: Promise<T>; controller: AbortController; waiters: number }

/**
 * Work shared by everyone who asks for the same key while it runs: the first caller starts it,
 * later callers wait for the same result. Each caller's signal only withdraws that caller; the
 * work itself is aborted when the last waiter has withdrawn, so a pull cancelled by every
 * kubelet that asked for it stops its transfers, and one cancelled by only one of them does not.
 * Finished work (either way) is forgotten, so the next caller starts afresh.
 */
export class SharedWork<T> {
  private readonly running = new Map<string, Entry<T>>();

  run(key: string, signal: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    let entry = this.running.get(key);
    if (!entry) {
      const controller = new AbortController();
      const e: Entry<T> = { controller, waiters: 0, promise: undefined as unknown as Promise<T> };
      e.promise = startWork(work, controller.signal).finally(() => {
        if (this.running.get(key) === e) this.running.delete(key);
      });
      // Nobody may be waiting when it fails (all withdrew); that is not an unhandled rejection.
      e.promise.catch(() => {});
      this.running.set(key, e);
      entry = e;
    }
    const e = entry;
    e.waiters++;
    if (!signal) return e.promise.finally(() => { e.waiters--; });
    return new Promise<T>((resolve, reject) => {
      const withdraw = () => {
        e.waiters--;
        if (e.waiters === 0) {
          e.controller.abort(abortReason(signal));
          if (this.running.get(key) === e) this.running.delete(key);
        }
        reject(abortReason(signal));
      };
      signal.addEventListener('abort', withdraw, { once: true });
      e.promise.then(
        (v) => { signal.removeEventListener('abort', withdraw); e.waiters--; resolve(v); },
        (err: unknown) => { signal.removeEventListener('abort', withdraw); e.waiters--; reject(err); },
      );
    });
  }

  /** Keys being worked on now. */
  get size(): number {
    return this.running.size;
  }
}

function startWork<T>(work: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> {
  try {
    return work(signal);
  } catch (err) {
    return Promise.reject(err);
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason instanceof Error ? signal.reason : new CanceledError('cancelled', { code: 'ERR_PULL_CANCELED' });
}
