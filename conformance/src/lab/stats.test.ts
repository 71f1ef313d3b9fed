import { describe, expect, it } from 'vitest';
import { createRunRecorder, distribution, percentile } from './stats.js';

describe('percentile (nearest rank)', () => {
  it('returns a member of the list at rank ceil(p/100 * n)', () => {
    const values = [15, 20, 35, 40, 50];
    // The worked example of the nearest-rank method: n = 5.
    expect(percentile(values, 5)).toBe(15);
    expect(percentile(values, 30)).toBe(20);
    expect(percentile(values, 40)).toBe(20);
    expect(percentile(values, 50)).toBe(35);
    expect(percentile(values, 100)).toBe(50);
  });

  it('does not round an exact rank up through floating-point error', () => {
    const ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(ten, 90)).toBe(9);
    expect(percentile(ten, 99)).toBe(10);
  });

  it('ignores input order and rejects empty lists and p outside (0, 100]', () => {
    expect(percentile([3, 1, 2], 50)).toBe(2);
    expect(() => percentile([], 50)).toThrow(/no values/);
    expect(() => percentile([1], 0)).toThrow(/outside/);
    expect(() => percentile([1], 101)).toThrow(/outside/);
  });

  it('summarises a distribution', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(distribution(values)).toEqual({ count: 100, min: 1, p50: 50, p90: 90, p99: 99, max: 100, mean: 50.5 });
    expect(distribution([])).toBeUndefined();
  });
});

describe('run recorder', () => {
  it('keeps per-host durations, failures and bytes by source', () => {
    const rec = createRunRecorder();
    rec.start('a', 0);
    rec.start('b', 0);
    rec.start('c', 10);
    rec.addBytes('a', 'origin', 100);
    rec.addBytes('a', 'peer', 50);
    rec.addBytes('b', 'peer', 150);
    rec.addBytes('b', 'peer', 1);
    rec.finish('a', 1000);
    rec.finish('b', 3000);
    rec.fail('c', new Error('origin unreachable'));
    expect(rec.results().map((r) => [r.host, r.durationMs, r.error])).toEqual([
      ['a', 1000, undefined], ['b', 3000, undefined], ['c', undefined, 'origin unreachable'],
    ]);
    const s = rec.summary();
    expect(s).toMatchObject({ hosts: 3, completed: 2, failed: 1, bytesBySource: { origin: 100, peer: 201 } });
    expect(s.completionMs).toMatchObject({ p50: 1000, max: 3000 });
    expect(() => rec.finish('nobody')).toThrow(/has not started/);
  });
});
