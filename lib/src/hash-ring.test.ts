import { describe, expect, it } from 'vitest';
import { createHashRing } from './hash-ring.js';
import { sha256 } from './digest.js';

const nodes = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1', 'http://e:1'];
const keys = Array.from({ length: 2000 }, (_, i) => sha256(`blob-${i}`));

describe('hash ring', () => {
  it('gives each key `replicas` distinct owners, the same on every client', () => {
    const a = createHashRing({ nodes, replicas: 3 });
    const b = createHashRing({ nodes: [...nodes].reverse(), replicas: 3 });
    for (const k of keys.slice(0, 100)) {
      expect(new Set(a.owners(k)).size).toBe(3);
      expect(a.owners(k)).toEqual(b.owners(k));
    }
  });

  it('spreads first owners evenly', () => {
    const ring = createHashRing({ nodes });
    const counts = new Map<string, number>();
    for (const k of keys) counts.set(ring.owners(k)[0]!, (counts.get(ring.owners(k)[0]!) ?? 0) + 1);
    for (const n of nodes) expect(counts.get(n)).toBeGreaterThan(2000 / 5 * 0.8);
  });

  it('moves only the keys of a removed node', () => {
    const before = createHashRing({ nodes, replicas: 1 });
    const after = createHashRing({ nodes: nodes.filter((n) => n !== 'http://c:1'), replicas: 1 });
    for (const k of keys) {
      if (before.owners(k)[0] !== 'http://c:1') expect(after.owners(k)[0]).toBe(before.owners(k)[0]);
    }
  });

  it('caps replicas at the node count and ranks every node', () => {
    const ring = createHashRing({ nodes: nodes.slice(0, 2), replicas: 3 });
    expect(ring.replicas).toBe(2);
    expect(ring.ranked(keys[0]!)).toHaveLength(2);
    expect(() => createHashRing({ nodes: [] })).toThrow(/at least one node/);
  });
});
