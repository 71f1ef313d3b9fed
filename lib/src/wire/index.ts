export { Wire, duplexPair, type WireOptions } from './wire.js';
export { FrameDecoder, WireError, MAX_HEADER_BYTES, encodeFrame } from './framing.js';
export { WIRE_VERSION, PEER_ID_BYTES, encodeHeader, decodeHeader, type WireMessage, type WireErrorCode } from './messages.js';
export { BufferPool, piecePool } from './buffer-pool.js';
