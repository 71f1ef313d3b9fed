import { InvalidArgumentError } from '@krill/lib';
import type { PeerInfo, WireHandout } from '../store/peer-store.js';
import { PEER_WIRE_BYTES, WIRE_COMPLETE, WIRE_ORIGIN } from '../store/peer-wire.js';

/**
 * The announce stream: `POST /announce` as binary frames on a connection upgraded from HTTP
 * (`GET /announce/stream`, `Upgrade: krill-announce/1`), so an announce costs no HTTP request
 * and the answers to every announce one read brought are written back in one write. The HTTP
 * route stays for anything else; both answer alike.
 *
 * Every frame is `u32 length` (of what follows) `| u8 type | u32 id` and a body, big-endian:
 * - ANNOUNCE (1), client to tracker: `digest[32]` (raw SHA-256) `| flags u8` (1 complete,
 *   2 origin) `| ip[4] | port u16 | peerId[20] | namespace` (u16 length, UTF-8).
 * - PEERS (2), the answer: `intervalMs u32 | count u16 | count × (peerId[20] | ip[4] | port u16 | flags u8)`.
 * - ERROR (3), the answer to an announce refused: `code` and `message` (each u16 length, UTF-8).
 * A frame over MAX_FRAME, of an unknown type, or whose body does not parse closes the connection.
 */
export const UPGRADE_PROTOCOL = 'krill-announce/1';
export const STREAM_PATH = '/announce/stream';
export const MAX_FRAME = 64 * 1024;
export const enum FrameType { Announce = 1, Peers = 2, Error = 3 }

const HEAD = 4 + 1 + 4;
const PEER = PEER_WIRE_BYTES;
const COMPLETE = WIRE_COMPLETE;
const ORIGIN = WIRE_ORIGIN;

export interface AnnounceFrame {
  id: number;
  /** `sha256:<hex>`. */
  digest: string;
  namespace: string;
  peerId: string;
  ip: string;
  port: number;
  complete: boolean;
  origin: boolean;
}

/** A protocol violation: the connection it came on is closed. */
export class FrameError extends Error {}

const ipBytes = (ip: string, out: Buffer, at: number) => {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new InvalidArgumentError(`ip ${JSON.stringify(ip)} is not an IPv4 address`, { code: 'ERR_PEER_INVALID' });
  for (let i = 0; i < 4; i++) {
    const n = Number(parts[i]);
    if (!/^\d{1,3}$/.test(parts[i]!) || n > 255) throw new InvalidArgumentError(`ip ${JSON.stringify(ip)} is not an IPv4 address`, { code: 'ERR_PEER_INVALID' });
    out[at + i] = n;
  }
};
const ipString = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

function frame(type: FrameType, id: number, bodyLength: number): Buffer {
  const b = Buffer.allocUnsafe(HEAD + bodyLength);
  b.writeUInt32BE(HEAD - 4 + bodyLength, 0);
  b[4] = type;
  b.writeUInt32BE(id >>> 0, 5);
  return b;
}

/** An ANNOUNCE frame; InvalidArgument when a field cannot be encoded. */
export function encodeAnnounce(a: AnnounceFrame): Buffer {
  const hex = a.digest.startsWith('sha256:') ? a.digest.slice(7) : '';
  if (!/^[a-f0-9]{64}$/.test(hex)) throw new InvalidArgumentError(`digest ${JSON.stringify(a.digest)} is not a sha256 digest`, { code: 'ERR_DIGEST_INVALID' });
  if (!/^[a-f0-9]{40}$/.test(a.peerId)) throw new InvalidArgumentError(`peerId ${JSON.stringify(a.peerId)} must be 40 hex characters`, { code: 'ERR_PEER_INVALID' });
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new InvalidArgumentError(`port ${a.port} is invalid`, { code: 'ERR_PEER_INVALID' });
  const ns = Buffer.from(a.namespace, 'utf8');
  const b = frame(FrameType.Announce, a.id, 32 + 1 + 4 + 2 + 20 + 2 + ns.length);
  let at = HEAD;
  at += b.write(hex, at, 'hex');
  b[at++] = (a.complete ? COMPLETE : 0) | (a.origin ? ORIGIN : 0);
  ipBytes(a.ip, b, at);
  at += 4;
  at = b.writeUInt16BE(a.port, at);
  at += b.write(a.peerId, at, 'hex');
  at = b.writeUInt16BE(ns.length, at);
  ns.copy(b, at);
  if (b.length > MAX_FRAME) throw new InvalidArgumentError(`namespace ${JSON.stringify(a.namespace)} is too long`, { code: 'ERR_NAME_INVALID' });
  return b;
}

export function decodeAnnounce(id: number, body: Buffer): AnnounceFrame {
  if (body.length < 61) throw new FrameError(`announce body of ${body.length} bytes is too short`);
  const nsLength = body.readUInt16BE(59);
  if (body.length !== 61 + nsLength) throw new FrameError(`announce body of ${body.length} bytes does not match its namespace length ${nsLength}`);
  const flags = body[32]!;
  return {
    id, digest: `sha256:${body.toString('hex', 0, 32)}`, complete: (flags & COMPLETE) !== 0, origin: (flags & ORIGIN) !== 0,
    ip: ipString(body, 33), port: body.readUInt16BE(37), peerId: body.toString('hex', 39, 59), namespace: body.toString('utf8', 61),
  };
}

/** A PEERS frame from each peer's 27 bytes (peer-wire.ts), as the store hands them out. */
export function encodePeers(id: number, peers: WireHandout, intervalMs: number): Buffer {
  const { bytes, offsets } = peers;
  const b = frame(FrameType.Peers, id, 4 + 2 + offsets.length * PEER);
  b.writeUInt32BE(intervalMs, HEAD);
  b.writeUInt16BE(offsets.length, HEAD + 4);
  let at = HEAD + 6;
  for (const from of offsets) {
    // A byte loop the JIT compiles: Buffer.copy and TypedArray.set cost more per call than 27 bytes do.
    for (let k = 0; k < PEER; k++) b[at + k] = bytes[from + k]!;
    at += PEER;
  }
  return b;
}

/**
 * A PEERS body. The peers are decoded when first read (from a copy of the bytes, which the
 * reader's buffer does not outlive): a caller that only counts or forwards them pays nothing.
 */
export function decodePeers(body: Buffer): { peers: PeerInfo[]; intervalMs: number } {
  if (body.length < 6) throw new FrameError('peers body too short');
  const count = body.readUInt16BE(4);
  if (body.length !== 6 + count * PEER) throw new FrameError(`peers body of ${body.length} bytes does not hold ${count} peers`);
  const bytes = Buffer.from(body);
  let peers: PeerInfo[] | undefined;
  return {
    intervalMs: body.readUInt32BE(0),
    get peers() {
      if (peers) return peers;
      peers = [];
      for (let at = 6; at < bytes.length; at += PEER) {
        const flags = bytes[at + 26]!;
        peers.push({ peerId: bytes.toString('hex', at, at + 20), ip: ipString(bytes, at + 20), port: bytes.readUInt16BE(at + 24), complete: (flags & COMPLETE) !== 0, origin: (flags & ORIGIN) !== 0 });
      }
      return peers;
    },
  };
}

export function encodeError(id: number, code: string, message: string): Buffer {
  const c = Buffer.from(code, 'utf8');
  const m = Buffer.from(message.slice(0, 4096), 'utf8');
  const b = frame(FrameType.Error, id, 2 + c.length + 2 + m.length);
  let at = b.writeUInt16BE(c.length, HEAD);
  at += c.copy(b, at);
  at = b.writeUInt16BE(m.length, at);
  m.copy(b, at);
  return b;
}

export function decodeError(body: Buffer): { code: string; message: string } {
  const cl = body.length >= 2 ? body.readUInt16BE(0) : -1;
  const ml = cl >= 0 && body.length >= 4 + cl ? body.readUInt16BE(2 + cl) : -1;
  if (ml < 0 || body.length !== 4 + cl + ml) throw new FrameError('error body does not parse');
  return { code: body.toString('utf8', 2, 2 + cl), message: body.toString('utf8', 4 + cl) };
}

/**
 * Splits a byte stream into frames: `push` takes what a read brought and calls `onFrame` for
 * every whole frame in it (a frame split over reads waits for the rest). Throws FrameError on a
 * frame too large or too short for its head.
 */
export function createFrameReader(onFrame: (type: number, id: number, body: Buffer) => void): { push(chunk: Buffer): void } {
  let pending: Buffer | undefined;
  return {
    push(chunk) {
      const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = undefined;
      let at = 0;
      while (buf.length - at >= 4) {
        const length = buf.readUInt32BE(at);
        if (length < HEAD - 4 || length + 4 > MAX_FRAME) throw new FrameError(`frame of ${length} bytes is outside ${HEAD - 4}..${MAX_FRAME - 4}`);
        if (buf.length - at < 4 + length) break;
        // A copy only of what must outlive this read: the body is parsed before push returns.
        onFrame(buf[at + 4]!, buf.readUInt32BE(at + 5), buf.subarray(at + HEAD, at + 4 + length));
        at += 4 + length;
      }
      if (at < buf.length) pending = Buffer.from(buf.subarray(at));
    },
  };
}
