import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../digest.js';
import { MAX_HEADER_BYTES, WireError } from './framing.js';
import { encodeHeader, type WireMessage } from './messages.js';
import { Duplex } from 'node:stream';
import { Wire, duplexPair } from './wire.js';

const handshake = (over: Partial<Extract<WireMessage, { type: 'handshake' }>> = {}): WireMessage => ({
  type: 'handshake', version: 1, peerId: randomBytes(20), digest: sha256('blob'), namespace: 'team/app',
  bitfield: Buffer.from([0b1010_0000]), pieceCount: 3, ...over,
});

function pair(maxPayloadBytes = 1024 * 1024) {
  const [x, y] = duplexPair();
  const violations: WireError[] = [];
  const a = new Wire(x, { maxPayloadBytes, onViolation: (e) => violations.push(e) });
  const b = new Wire(y, { maxPayloadBytes, onViolation: (e) => violations.push(e) });
  const got: WireMessage[] = [];
  b.on('message', (m: WireMessage) => got.push(m));
  return { a, b, x, got, violations };
}

const tick = () => new Promise((r) => setImmediate(r));

/** Writes raw bytes as a frame, bypassing the encoder. */
function frame(header: Uint8Array | Buffer, lengthOverride?: number): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(lengthOverride ?? header.length, 0);
  return Buffer.concat([len, header]);
}

describe('peer wire protocol', () => {
  it('round-trips every message type, piece payloads byte for byte', async () => {
    const { a, got } = pair();
    const data = randomBytes(300_000);
    const sent: WireMessage[] = [
      handshake(), { type: 'request', index: 2 }, { type: 'piece', index: 2, data }, { type: 'piece', index: 0, data: Buffer.alloc(0) },
      { type: 'have', index: 7 }, { type: 'cancel', index: 2 }, { type: 'complete' },
      { type: 'error', code: 'PIECE_UNAVAILABLE', message: 'evicted', index: 5 },
    ];
    for (const m of sent) await a.send(m);
    await tick();
    expect(got).toEqual(sent);
  });

  it('reassembles frames split at every byte boundary', async () => {
    const { x, got } = pair();
    const m: WireMessage = { type: 'piece', index: 1, data: randomBytes(100) };
    const h = handshake();
    const bytes = Buffer.concat([frame(encodeHeader(h)), frame(encodeHeader(m)), (m as { data: Buffer }).data]);
    for (let i = 0; i < bytes.length; i++) x.write(bytes.subarray(i, i + 1));
    await tick();
    expect(got).toEqual([h, m]);
  });

  const violation = async (bytes: Buffer, code: string, opts: { maxPayload?: number; end?: boolean } = {}) => {
    const { x, b, violations } = pair(opts.maxPayload);
    x.write(bytes);
    if (opts.end) x.end();
    await tick();
    await tick();
    expect(violations.map((v) => v.code)).toEqual([code]);
    expect(b.isClosed).toBe(true);
  };

  it('closes on a truncated frame', async () => {
    const full = frame(encodeHeader(handshake()));
    await violation(full.subarray(0, full.length - 3), 'ERR_WIRE_TRUNCATED', { end: true });
  });

  it('closes on an oversized or empty header', async () => {
    await violation(frame(Buffer.alloc(8), MAX_HEADER_BYTES + 1), 'ERR_WIRE_HEADER_SIZE');
    await violation(frame(Buffer.alloc(0)), 'ERR_WIRE_HEADER_SIZE');
  });

  it('closes on an oversized payload', async () => {
    const hs = frame(encodeHeader(handshake()));
    const piece = frame(encodeHeader({ type: 'piece', index: 0, data: Buffer.alloc(2048) }));
    await violation(Buffer.concat([hs, piece]), 'ERR_WIRE_PAYLOAD_SIZE', { maxPayload: 1024 });
  });

  it('closes on an unknown message type and on malformed bytes', async () => {
    // Field 15 (not in Header): a valid protobuf that names no message krill knows.
    await violation(frame(Buffer.from([0x7a, 0x00])), 'ERR_WIRE_UNKNOWN_MESSAGE');
    await violation(frame(Buffer.from([0x0a, 0xff, 0xff, 0xff])), 'ERR_WIRE_MALFORMED');
  });

  it('closes on a bad handshake: missing, wrong version, bad peer id, bad digest, wrong bitfield, repeated', async () => {
    await violation(frame(encodeHeader({ type: 'have', index: 1 })), 'ERR_WIRE_HANDSHAKE');
    await violation(frame(encodeHeader(handshake({ version: 2 }))), 'ERR_WIRE_HANDSHAKE');
    await violation(frame(encodeHeader(handshake({ peerId: randomBytes(3) }))), 'ERR_WIRE_HANDSHAKE');
    await violation(frame(encodeHeader(handshake({ digest: 'sha256:nope' }))), 'ERR_WIRE_HANDSHAKE');
    await violation(frame(encodeHeader(handshake({ pieceCount: 17 }))), 'ERR_WIRE_HANDSHAKE');
    await violation(Buffer.concat([frame(encodeHeader(handshake())), frame(encodeHeader(handshake()))]), 'ERR_WIRE_HANDSHAKE');
  });

  it('a violation on one connection leaves the process and other connections working', async () => {
    await violation(frame(Buffer.alloc(0)), 'ERR_WIRE_HEADER_SIZE');
    const { a, got } = pair();
    await a.send(handshake());
    await tick();
    expect(got).toHaveLength(1);
    await expect(async () => { a.close(); await a.send({ type: 'complete' }); }).rejects.toMatchObject({ code: 'ERR_WIRE_CLOSED' });
  });

  it('hands the stream what is sent in one turn of the event loop as one write, and what is sent before close', async () => {
    const writes: number[] = [];
    const stream = new Duplex({
      read() {},
      write(_chunk, _enc, done) { writes.push(1); done(); },
      writev(chunks, done) { writes.push(chunks.length); done(); },
    });
    const wire = new Wire(stream, { maxPayloadBytes: 1024 });
    for (const index of [1, 2, 3]) void wire.send({ type: 'have', index });
    void wire.send({ type: 'piece', index: 4, data: Buffer.alloc(1024) });
    expect(writes).toEqual([]);
    await tick();
    // Three HAVE frames, a piece's header and its payload.
    expect(writes).toEqual([5]);
    void wire.send({ type: 'error', code: 'BLOB_UNKNOWN', message: 'not here', index: 0 });
    wire.close();
    expect(writes).toEqual([5, 1]);
  });
});
