import { describe, expect, it } from 'vitest';
import { sha256, type Digest } from '@krill/lib';
import { createPeerStore } from './memory-peer-store.js';

const d = sha256('blob') as Digest;
const id = (n: number) => n.toString(16).padStart(40, '0');
const peer = (n: number, complete = false, origin = false) => ({ peerId: id(n), ip: '10.0.0.1', port: 16000 + n, complete, origin });
const ids = (ps: Array<{ peerId: string }>) => ps.map((p) => p.peerId);

describe('memory peer store sampling', () => {
  it('hands out distinct peers, never the caller, and reaches every peer over many handouts', () => {
    const store = createPeerStore({ ttlMs: 60_000 });
    for (let i = 1; i <= 300; i++) store.upsert(d, peer(i));
    const seen = new Set<string>();
    for (let k = 0; k < 200; k++) {
      const out = ids(store.handout(d, id(7), 50));
      expect(out).toHaveLength(50);
      expect(new Set(out).size).toBe(50);
      expect(out).not.toContain(id(7));
      for (const p of out) seen.add(p);
    }
    // A fixed or biased sample would leave peers out; 200 draws of 50 from 299 reach all of them.
    expect(seen.size).toBe(299);
  });

  it('samples a random limit of the seeders when there are more of them than the limit', () => {
    const store = createPeerStore({ ttlMs: 60_000 });
    for (let i = 1; i <= 20; i++) store.upsert(d, peer(i, true));
    for (let i = 100; i < 110; i++) store.upsert(d, peer(i));
    const out = store.handout(d, id(100), 5);
    expect(out).toHaveLength(5);
    expect(out.every((p) => p.complete)).toBe(true);
  });

  it('moves a peer that finished its download from the downloaders to the seeders', () => {
    const store = createPeerStore({ ttlMs: 60_000 });
    for (let i = 1; i <= 5; i++) store.upsert(d, peer(i));
    store.upsert(d, peer(3, true));
    expect(store.size()).toEqual({ blobs: 1, peers: 5 });
    const out = store.handout(d, id(1), 10);
    expect(out[0]).toEqual(peer(3, true));
    expect(ids(out).sort()).toEqual([id(2), id(3), id(4), id(5)]);
  });

  it('hands out a peer as it last announced, in a frozen object', () => {
    const store = createPeerStore({ ttlMs: 60_000 });
    store.upsert(d, peer(1));
    store.upsert(d, { ...peer(1), ip: '10.0.0.9', port: 17000 });
    const [p] = store.handout(d, id(2), 10);
    expect(p).toEqual({ ...peer(1), ip: '10.0.0.9', port: 17000 });
    expect(Object.isFrozen(p)).toBe(true);
  });

  it('drops peers in the order they stopped announcing, and empties swarms nobody reads', () => {
    let t = 0;
    const store = createPeerStore({ ttlMs: 1000, now: () => t });
    const other = sha256('other') as Digest;
    store.upsert(other, peer(9));
    for (let i = 1; i <= 4; i++) store.upsert(d, peer(i));
    t = 500;
    store.upsert(d, peer(1));
    store.upsert(d, peer(3));
    t = 1200;
    expect(ids(store.handout(d, id(9), 10)).sort()).toEqual([id(1), id(3)]);
    // The other swarm is never read again; the sweep on a later upsert empties it.
    t = 2400;
    store.upsert(d, peer(5));
    expect(store.size()).toEqual({ blobs: 1, peers: 1 });
  });

  it('never hands out an expired peer when the clock went backwards', () => {
    let t = 10_000;
    const store = createPeerStore({ ttlMs: 1000, now: () => t });
    store.upsert(d, peer(1));
    t = 5000;
    store.upsert(d, peer(2));
    // Peer 2 expires at 6000, before peer 1 (11,000), so it is not at the front of expiry order.
    t = 7000;
    expect(ids(store.handout(d, id(9), 10))).toEqual([id(1)]);
  });

  it('keeps sampling correct across swarms of different sizes (the shared scratch is restored)', () => {
    const store = createPeerStore({ ttlMs: 60_000 });
    const digests = [3, 40, 700, 2].map((n) => {
      const digest = sha256(`blob-${n}`) as Digest;
      for (let i = 0; i < n; i++) store.upsert(digest, peer(n * 10_000 + i));
      return { digest, n };
    });
    for (let round = 0; round < 50; round++) {
      for (const { digest, n } of digests) {
        const out = ids(store.handout(digest, id(n * 10_000), 50));
        expect(out).toHaveLength(Math.min(50, n - 1));
        expect(new Set(out).size).toBe(out.length);
        for (const p of out) expect(Math.floor(parseInt(p, 16) / 10_000)).toBe(n);
      }
    }
  });
});
