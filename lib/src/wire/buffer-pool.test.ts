import { createServer, connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isAligned } from './aligned-memory.js';
import { BufferPool } from './buffer-pool.js';
import { FrameDecoder, encodeFrame } from './framing.js';
import { encodeHeader, type WireMessage } from './messages.js';
import { Wire } from './wire.js';

describe('piece buffer pool', () => {
  const K64 = 64 * 1024;

  it('hands back a given buffer for the same size, and keeps no more idle than its limit', () => {
    const pool = new BufferPool(2 * K64);
    const a = pool.take(K64);
    const b = pool.take(K64);
    expect(a).not.toBe(b);
    expect(isAligned(a) && isAligned(b)).toBe(true);
    pool.give(a);
    pool.give(b);
    expect(pool.idleSize).toBe(2 * K64);
    const c = pool.take(2 * K64);
    pool.give(c);
    // Over the limit: left to the GC.
    expect(pool.idleSize).toBe(2 * K64);
    expect(pool.take(K64)).toBe(b);
    expect(pool.take(K64)).toBe(a);
    expect(pool.reused).toBe(2);
    expect(pool.idleSize).toBe(0);
  });

  it('keeps only whole buffers of a power-of-two size from 64 KiB: no slices, no odd last pieces', () => {
    const pool = new BufferPool(1 << 24);
    const whole = pool.take(K64);
    pool.give(whole.subarray(4));
    pool.give(Buffer.from('small'));
    const odd = pool.take(K64 + 1);
    expect(odd.length).toBe(K64 + 1);
    pool.give(odd);
    pool.give(Buffer.allocUnsafeSlow(1000));
    // A whole buffer of a pooled size that the pool did not make is not aligned: not kept.
    pool.give(Buffer.allocUnsafeSlow(K64));
    expect(pool.idleSize).toBe(0);
    pool.give(whole);
    expect(pool.idleSize).toBe(K64);
  });
});

describe('frame decoder with a pool', () => {
  it('assembles a payload split over many chunks into one pooled buffer of its length', () => {
    const pool = new BufferPool(1 << 20);
    const decoder = new FrameDecoder(1 << 20, pool);
    const data = Buffer.alloc(128 * 1024, 7);
    data[0] = 1;
    data[128 * 1024 - 1] = 9;
    const m: WireMessage = { type: 'piece', index: 3, data };
    const bytes = Buffer.concat(encodeFrame(m, encodeHeader(m)));
    const got: WireMessage[] = [];
    for (let off = 0; off < bytes.length; off += 1000) decoder.feed(bytes.subarray(off, off + 1000), (x) => got.push(x));
    expect(got).toHaveLength(1);
    const piece = got[0] as Extract<WireMessage, { type: 'piece' }>;
    expect(piece.index).toBe(3);
    expect(piece.data.equals(data)).toBe(true);
    expect(piece.data.length).toBe(data.length);
    expect(isAligned(piece.data)).toBe(true);
    // Given back, the next piece of that length reuses it.
    pool.give(piece.data);
    const again: WireMessage[] = [];
    decoder.feed(bytes, (x) => again.push(x));
    expect((again[0] as Extract<WireMessage, { type: 'piece' }>).data).toBe(piece.data);
    expect(decoder.idle).toBe(true);
  });
});

describe('wire sends over a socket', () => {
  it('reports when a piece was handed on, and waiting senders share one drain listener', async () => {
    let accepted!: Socket;
    const server = createServer((s) => { accepted = s; s.pause(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const socket = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1' });
    await new Promise((r) => socket.once('connect', r));
    const wire = new Wire(socket, { maxPayloadBytes: 1 << 20 });
    const data = Buffer.alloc(1 << 20);
    const written: boolean[] = [];
    // The peer does not read: the kernel buffers fill and sends wait for a drain.
    const sends = Array.from({ length: 40 }, (_, i) => wire.send({ type: 'piece', index: i, data }, (ok) => written.push(ok)));
    await new Promise((r) => setTimeout(r, 50));
    expect(socket.listenerCount('drain')).toBe(1);
    expect(written.length).toBeLessThan(40);
    accepted.resume();
    await Promise.all(sends);
    await new Promise((r) => setTimeout(r, 50));
    expect(written).toEqual(Array(40).fill(true));
    expect(socket.listenerCount('drain')).toBe(0);
    wire.close();
    accepted.destroy();
    await new Promise((r) => server.close(() => r(undefined)));
  });
});
