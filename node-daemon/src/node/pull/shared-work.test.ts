import { describe, expect, it } from 'vitest';
import { SharedWork } from './shared-work.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('SharedWork', () => {
  it('runs one piece of work for concurrent callers of a key, and again once it finished', async () => {
    const w = new SharedWork<number>();
    let runs = 0;
    const gate = deferred<void>();
    const work = async () => { runs++; await gate.promise; return runs; };
    const a = w.run('k', undefined, work);
    const b = w.run('k', new AbortController().signal, work);
    const other = w.run('other', undefined, async () => 7);
    gate.resolve();
    expect([await a, await b, await other]).toEqual([1, 1, 7]);
    expect(await w.run('k', undefined, work)).toBe(2);
    expect(w.size).toBe(0);
  });

  it('aborts the work only when every waiter withdrew', async () => {
    const w = new SharedWork<string>();
    let aborted = false;
    const work = (signal: AbortSignal) => new Promise<string>((resolve, reject) => {
      signal.addEventListener('abort', () => { aborted = true; reject(signal.reason); });
      setTimeout(() => resolve('done'), 200);
    });
    const c1 = new AbortController();
    const c2 = new AbortController();
    const p1 = w.run('k', c1.signal, work);
    const p2 = w.run('k', c2.signal, work);
    c1.abort(new Error('first gave up'));
    await expect(p1).rejects.toThrow('first gave up');
    expect(aborted).toBe(false);
    expect(await p2).toBe('done');

    const c3 = new AbortController();
    const p3 = w.run('k', c3.signal, work);
    c3.abort(new Error('last gave up'));
    await expect(p3).rejects.toThrow('last gave up');
    expect(aborted).toBe(true);
    expect(w.size).toBe(0);
  });

  it('gives every waiter the failure', async () => {
    const w = new SharedWork<void>();
    const work = async () => { throw new Error('boom'); };
    await expect(Promise.all([w.run('k', undefined, work), w.run('k', undefined, work)])).rejects.toThrow('boom');
  });
});
