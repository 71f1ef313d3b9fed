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

let codes: protobuf.Enum | undefined;

/** Error.Code's names by number, and numbers by name, from the .proto. */
function errorCodes(): protobuf.Enum {
  codes ??= headerType().lookupEnum('krill.p2p.v1.Error.Code');
  return codes;
}

/**
 * Encodes a message's header (the piece payload is not part of it). Plain objects go straight to
 * the type's encoder: `fromObject` first, and `toObject` on decoding, cost a conversion per message
 * and are the largest functions protobufjs generates for this type, which V8 compiled again in
 * every agent (a quarter of a second each, on the lab's two cores) once they became hot.
 */
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
      body = { error: { code: errorCodes().values[m.code] ?? 0, message: m.message, index: m.index } };
      break;
    default:
      body = { [m.type]: { index: m.index } };
  }
  return t.encode(body).finish();
}

/** A decoded header: the message, or for a piece its index and the payload length to read next. */
export type DecodedHeader =
  | { kind: 'message'; message: Exclude<WireMessage, { type: 'piece' }> }
  | { kind: 'piece'; index: number; length: number };

/** What `Type.decode` gives for a Header: the set member of the oneof is named by `body`. */
interface DecodedFields {
  body?: string;
  [member: string]: unknown;
}

/** Decodes a header; throws on malformed bytes, returns undefined for a message type it does not know. */
export function decodeHeader(bytes: Uint8Array): DecodedHeader | undefined {
  const h = headerType().decode(bytes) as unknown as DecodedFields;
  const body = h.body;
  // Unset scalar fields read as their defaults (0, '', empty bytes) from the message's prototype.
  const b = (body ? h[body] : undefined) as Record<string, number & string & Uint8Array> | undefined;
  switch (body) {
    case 'handshake':
      return { kind: 'message', message: {
        type: 'handshake', version: b!['version'], peerId: Buffer.from(b!['peerId']), digest: b!['digest'],
        namespace: b!['namespace'], bitfield: Buffer.from(b!['bitfield']), pieceCount: b!['pieceCount'],
      } };
    case 'piece':
      return { kind: 'piece', index: b!['index'], length: b!['length'] };
    case 'request':
    case 'have':
    case 'cancel':
      return { kind: 'message', message: { type: body, index: b!['index'] } };
    case 'complete':
      return { kind: 'message', message: { type: 'complete' } };
    case 'error': {
      const code = (errorCodes().valuesById[b!['code']] ?? 'CODE_UNSPECIFIED') as WireErrorCode;
      return { kind: 'message', message: { type: 'error', code, message: b!['message'], index: b!['index'] } };
    }
    default:
      return undefined;
  }
}
