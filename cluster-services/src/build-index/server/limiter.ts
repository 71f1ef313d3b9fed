/** Runs `fn` once fewer than the limit's number of calls are running. */
export type Limiter = <T>(fn: () => Promise<T>) => Promise<T>;

/**
 * A counting semaphore for async calls. Callers that hold no slot while they wait for others
 * (only leaf calls are wrapped) cannot deadlock, however deep the calls nest.
 */
export function createLimiter(concurrency: number): Limiter {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (fn) => {
    while (active >= concurrency) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
