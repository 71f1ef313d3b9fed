import { describe, expect, it } from 'vitest';
import { PiecePicker } from './piece-picker.js';
import { TokenBucket } from './token-bucket.js';

describe('token bucket', () => {
  it('lets the burst through at once, then paces to the rate, in call order', async () => {
    let t = 0;
    const slept: number[] = [];
    const bucket = new TokenBucket(1000, 500, () => t, async (ms) => { slept.push(ms); t += ms; });
    await bucket.take(500);
    expect(slept).toEqual([]);
    await bucket.take(250);
    expect(slept).toEqual([250]);
    // A take larger than the burst runs into debt and waits it off at the rate.
    await bucket.take(2000);
    expect(slept[1]).toBeCloseTo(2000);
    expect(t).toBeCloseTo(2250);
    expect(() => new TokenBucket(0, 1)).toThrow(/must be positive/);
  });
});

describe('piece picker', () => {
  const all = () => true;
  const none = () => false;

  it('picks the rarest piece the peer has, skipping what we have or have asked for', () => {
    const have = new Set([0]);
    const p = new PiecePicker(4, (i) => have.has(i), { endgameThreshold: 0, missing: () => 4 - have.size });
    p.addPeer(all, 1);
    p.addPeer((i) => i !== 3, 1);
    p.addPeer((i) => i === 2, 1);
    // availability: 0:2 1:2 2:3 3:1 → piece 3 is rarest.
    expect(p.pick(all, none)).toBe(3);
    p.requested(3);
    expect(p.pick(all, none)).toBe(1);
    expect(p.pick((i) => i === 2, none)).toBe(2);
    expect(p.pick((i) => i === 0, none)).toBeUndefined();
  });

  it('in endgame asks again for pieces already requested elsewhere, least-requested first', () => {
    const p = new PiecePicker(3, (i) => i === 0, { endgameThreshold: 2, missing: () => 2 });
    p.addPeer(all, 1);
    p.requested(1);
    p.requested(1);
    p.requested(2);
    expect(p.pick(all, none)).toBe(2);
    expect(p.pick(all, (i) => i === 2)).toBe(1);
    p.settled(1);
    p.settled(1);
    p.settled(2);
    const noEndgame = new PiecePicker(3, (i) => i === 0, { endgameThreshold: 1, missing: () => 2 });
    noEndgame.addPeer(all, 1);
    noEndgame.requested(1);
    noEndgame.requested(2);
    expect(noEndgame.pick(all, none)).toBeUndefined();
  });

  it('breaks ties in index order from the starting point asked for, wrapping round', () => {
    const have = new Set([1]);
    const p = new PiecePicker(5, (i) => have.has(i), { endgameThreshold: 0, missing: () => 5 - have.size });
    p.addPeer(all, 1);
    expect(p.pick(all, none)).toBe(0);
    expect(p.pick(all, none, 3)).toBe(3);
    expect(p.pick(all, (i) => i >= 3, 3)).toBe(0);
    // Rarity still comes first: a rarer piece before the starting point wins.
    p.addHave(3);
    p.addHave(4);
    expect(p.pick(all, none, 3)).toBe(0);
  });

  it('follows availability as peers come, announce and go', () => {
    const p = new PiecePicker(2, () => false, { endgameThreshold: 0, missing: () => 2 });
    const peerA = (i: number) => i === 0;
    p.addPeer(peerA, 1);
    p.addHave(1);
    p.addHave(1);
    expect(p.pick(all, none)).toBe(0);
    p.addPeer(peerA, -1);
    p.addPeer(all, 1);
    p.addPeer(all, 1);
    expect(p.pick(all, none)).toBe(0);
  });
});
