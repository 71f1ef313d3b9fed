import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** The peer wire protocol's version; a handshake with another is refused. */
export const WIRE_VERSION = 1;
/** Peer ids are 20 random bytes, as BitTorrent's and Kraken's are. */
export const PEER_ID_BYTES = 20;

export type WireMessage =
  | { type: 'handshake'; version: number; peerId: Buffer; digest: string; namespace: string; bitfield: Buffer; pieceCount: number }
  | { type: 'request'; index: number }
  | { type: 'piece'; index: number; data: Buffer }
  | { type: 'have'; index: number }
  | { type: 'cancel'; index: number }
  | { type: 'complete' }
  | { type: 'error'; code: WireErrorCode; message: string; index: number };

export type WireErrorCode = 'CODE_UNSPECIFIED' | 'PIECE_UNAVAILABLE' | 'BLOB_UNKNOWN' | 'PROTOCOL';

const PROTO = fileURLToPath(new URL('../../../proto/krill/p2p/v1/wire.proto', import.meta.url));
let header: protobuf.Type | undefined;

/** The `Header` message type, loaded once from proto/krill/p2p/v1/wire.proto. */
function headerType(): protobuf.Type {
  header ??= protobuf.loadSync(PROTO).lookupType('krill.p2p.v1.Header');
  return header;
}

/** Encodes a message's header (the piece payload is not part of it). */
export function encodeHeader(m: WireMessage): Uint8Array {
  const t = headerType();
  let body: Record<string, unknown>;
  switch (m.type) {
    case 'handshake':
      body = { handshake: { version: m.version, peerId: m.peerId, digest: m.digest, namespace: m.namespace, bitfield: m.bitfield, pieceCount: m.pieceCount } };
      break;
    case 'piece':
      body = { piece: { index: m.index, length: m.data.length } };
      break;
    case 'complete':
      body = { complete: {} };
      break;
    case 'error':
      body = { error: { code: m.code, message: m.message, index: m.index } };
      break;
    default:
      body = { [m.type]: { index: m.index } };
  }
  return t.encode(t.fromObject(body)).finish();
}

/** A decoded header: the message, or for a piece its index and the payload length to read next. */
export type DecodedHeader =
  | { kind: 'message'; message: Exclude<WireMessage, { type: 'piece' }> }
  | { kind: 'piece'; index: number; length: number };

/** Decodes a header; throws on malformed bytes, returns undefined for a message type it does not know. */
export function decodeHeader(bytes: Uint8Array): DecodedHeader | undefined {
  const t = headerType();
  const h = t.toObject(t.decode(bytes), { enums: String, longs: Number, bytes: Buffer, defaults: true, oneofs: true }) as Record<string, Record<string, unknown>> & { body?: string };
  const b = h.body ? h[h.body]! : undefined;
  const u = (k: string) => Number(b?.[k] ?? 0);
  switch (h.body) {
    case 'handshake':
      return { kind: 'message', message: {
        type: 'handshake', version: u('version'), peerId: Buffer.from(b!['peerId'] as Uint8Array), digest: String(b!['digest']),
        namespace: String(b!['namespace']), bitfield: Buffer.from(b!['bitfield'] as Uint8Array), pieceCount: u('pieceCount'),
      } };
    case 'piece':
      return { kind: 'piece', index: u('index'), length: u('length') };
    case 'request':
    case 'have':
    case 'cancel':
      return { kind: 'message', message: { type: h.body, index: u('index') } };
    case 'complete':
      return { kind: 'message', message: { type: 'complete' } };
    case 'error':
      return { kind: 'message', message: { type: 'error', code: String(b!['code']) as WireErrorCode, message: String(b!['message']), index: u('index') } };
    default:
      return undefined;
  }
}
