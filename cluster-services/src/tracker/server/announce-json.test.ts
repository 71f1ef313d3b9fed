import { describe, expect, it } from 'vitest';
import { createAnnounceEncoder } from './announce-json.js';

const peer = (n: number, complete = false) => Object.freeze({ peerId: n.toString(16).padStart(40, '0'), ip: `10.0.0.${n}`, port: 16000 + n, complete, origin: false });

describe('announce encoder', () => {
  it('gives exactly what JSON.stringify gives', () => {
    const encode = createAnnounceEncoder();
    const peers = [peer(1, true), peer(2), peer(3)];
    for (const list of [[], peers.slice(0, 1), peers, [...peers].reverse()]) {
      expect(encode(list, 3000).toString('utf8')).toBe(JSON.stringify({ peers: list, intervalMs: 3000 }));
    }
  });

  // The cache is keyed by object: a peer that announces again is a new object with new bytes.
  it('encodes a replaced peer object afresh', () => {
    const encode = createAnnounceEncoder();
    const before = peer(1);
    expect(JSON.parse(encode([before], 3000).toString()).peers[0].port).toBe(16001);
    const after = Object.freeze({ ...before, port: 17001 });
    expect(JSON.parse(encode([after], 3000).toString()).peers[0].port).toBe(17001);
  });
});
