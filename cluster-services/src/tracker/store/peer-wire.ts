import type { PeerInfo } from './peer-store.js';

/**
 * A peer's 27 bytes in the announce stream's PEERS frame (stream/frames.ts): `peerId[20] | ip[4] |
 * port u16 | flags u8` (1 complete, 2 origin). The memory store writes them once per announce into
 * its WireArena, so a handout of 50 peers costs 50 copies of 27 bytes (a lookup per peer in a
 * side table, or a symbol property on the frozen PeerInfo, cost more than the rest of the
 * announce).
 */
export const PEER_WIRE_BYTES = 27;
export const WIRE_COMPLETE = 1;
export const WIRE_ORIGIN = 2;

/**
 * Every peer's 27 bytes side by side in one array, a slot per peer for as long as it is in the
 * store: a handout copies from one backing store, where an array per peer cost a cache miss for
 * its header and another for its bytes. Slots are reused; the array doubles when full.
 */
export class WireArena {
  private buf = Buffer.alloc(PEER_WIRE_BYTES * 1024);
  private readonly free: number[] = [];
  private next = 0;

  /** The bytes; a slot's are at `offset .. offset + 27`. Replaced when the arena grows. */
  get bytes(): Uint8Array {
    return this.buf;
  }

  /** A slot for `p`, written; returns its byte offset. */
  alloc(p: PeerInfo): number {
    let at = this.free.pop();
    if (at === undefined) {
      at = this.next;
      this.next += PEER_WIRE_BYTES;
      if (this.next > this.buf.length) {
        const bigger = Buffer.alloc(this.buf.length * 2);
        this.buf.copy(bigger);
        this.buf = bigger;
      }
    }
    this.write(p, at);
    return at;
  }

  release(at: number): void {
    this.free.push(at);
  }

  /** `p`'s bytes at `at`; the caller has validated `ip` as dotted IPv4 and `peerId` as 40 hex characters. */
  write(p: PeerInfo, at: number): void {
    const b = this.buf;
    b.write(p.peerId, at, 20, 'hex');
    const parts = p.ip.split('.');
    for (let i = 0; i < 4; i++) b[at + 20 + i] = Number(parts[i]) & 255;
    // Masked: the store takes what it is given; the announce paths have validated the port.
    b.writeUInt16BE(p.port & 0xffff, at + 24);
    b[at + 26] = (p.complete ? WIRE_COMPLETE : 0) | (p.origin ? WIRE_ORIGIN : 0);
  }
}
