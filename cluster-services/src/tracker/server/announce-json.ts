import type { PeerInfo } from '../store/peer-store.js';

/** Encodes the announce response `{ peers, intervalMs }` as UTF-8 JSON. */
export type AnnounceEncoder = (peers: readonly PeerInfo[], intervalMs: number) => Buffer;

const OPEN = Buffer.from('{"peers":[');

/**
 * The announce response built from each peer's own JSON bytes, encoded once per peer object
 * rather than once per announce that hands it out. This relies on the store's contract that the
 * objects it hands out are frozen and replaced, never changed, when their peer announces again,
 * so an object's identity stands for its content; the map is weak, so a replaced object's bytes
 * go with it. Measured on the 2-core bench machine, JSON.stringify of 50 peers took ~20 µs and
 * the UTF-8 length and encoding of the resulting string ~15 µs more, together nearly half of an
 * announce's cost; copying cached bytes takes ~2 µs. A Buffer also spares fastify measuring the
 * string for `content-length`. The output is byte for byte what JSON.stringify would give.
 */
export function createAnnounceEncoder(): AnnounceEncoder {
  // Each peer's JSON with a leading comma; the first peer of a response skips it.
  const peerJson = new WeakMap<PeerInfo, Buffer>();
  return (peers, intervalMs) => {
    const parts: Buffer[] = [OPEN];
    let length = OPEN.length;
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]!;
      let json = peerJson.get(p);
      if (json === undefined) peerJson.set(p, (json = Buffer.from(`,${JSON.stringify(p)}`)));
      const part = i === 0 ? json.subarray(1) : json;
      parts.push(part);
      length += part.length;
    }
    const close = Buffer.from(`],"intervalMs":${JSON.stringify(intervalMs)}}`);
    parts.push(close);
    return Buffer.concat(parts, length + close.length);
  };
}
