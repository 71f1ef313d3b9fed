import { KrillError } from '../errors.js';
import { piecePool, type BufferPool } from './buffer-pool.js';
import { decodeHeader, type WireMessage } from './messages.js';

/**
 * Headers are small (a handshake's bitfield is the largest part: 64 KiB holds 524,288 pieces,
 * far more than any blob has), so anything larger is an attack or a bug.
 */
export const MAX_HEADER_BYTES = 64 * 1024;

/** A protocol violation; the connection that caused it is closed. */
export class WireError extends KrillError {
  constructor(code: string, message: string) {
    super('InvalidArgument', code, message);
  }
}

type State =
  | { kind: 'length' }
  | { kind: 'header'; length: number }
  | { kind: 'payload'; index: number; data: Buffer; filled: number };

/**
 * Turns a byte stream into messages: 4-byte big-endian header length, header, then for a piece
 * its raw payload. The state is explicit so a frame may arrive in any number of chunks. A piece's
 * payload is copied, chunk by chunk as it arrives, into one buffer of its length taken from
 * `pool` (the receiver gives it back once done with it); lengths and headers are read in place
 * when a chunk holds them whole. Throws WireError (ERR_WIRE_HEADER_SIZE, ERR_WIRE_MALFORMED,
 * ERR_WIRE_UNKNOWN_MESSAGE, ERR_WIRE_PAYLOAD_SIZE) on the first violation; the decoder is
 * unusable after that.
 */
export class FrameDecoder {
  private state: State = { kind: 'length' };
  /** A length or header split over chunks, gathered here until whole. */
  private part: Buffer | undefined;
  private partFilled = 0;

  /** `maxPayloadBytes`: the largest piece accepted, the blob's piece length once it is known. */
  constructor(public maxPayloadBytes: number, private readonly pool: BufferPool = piecePool) {}

  /** True when no frame is partly received. */
  get idle(): boolean {
    return this.state.kind === 'length' && this.partFilled === 0;
  }

  feed(chunk: Buffer, emit: (m: WireMessage) => void): void {
    let off = 0;
    while (off < chunk.length) {
      const s = this.state;
      if (s.kind === 'payload') {
        const n = Math.min(s.data.length - s.filled, chunk.length - off);
        chunk.copy(s.data, s.filled, off, off + n);
        s.filled += n;
        off += n;
        if (s.filled === s.data.length) {
          this.state = { kind: 'length' };
          emit({ type: 'piece', index: s.index, data: s.data });
        }
        continue;
      }
      const need = s.kind === 'length' ? 4 : s.length;
      if (this.partFilled === 0 && chunk.length - off >= need) {
        // Whole in this chunk: no copy. (A decoded handshake's bytes fields may keep a view of
        // the chunk; chunks are never reused, so that is safe.)
        const bytes = chunk.subarray(off, off + need);
        off += need;
        this.advance(bytes, emit);
        continue;
      }
      this.part ??= Buffer.allocUnsafe(need);
      const n = Math.min(need - this.partFilled, chunk.length - off);
      chunk.copy(this.part, this.partFilled, off, off + n);
      this.partFilled += n;
      off += n;
      if (this.partFilled < need) return;
      const bytes = this.part;
      this.part = undefined;
      this.partFilled = 0;
      this.advance(bytes, emit);
    }
  }

  private advance(bytes: Buffer, emit: (m: WireMessage) => void): void {
    const s = this.state;
    if (s.kind === 'length') {
      const length = bytes.readUInt32BE(0);
      if (length === 0 || length > MAX_HEADER_BYTES) throw new WireError('ERR_WIRE_HEADER_SIZE', `frame header of ${length} bytes (1 to ${MAX_HEADER_BYTES} allowed)`);
      this.state = { kind: 'header', length };
      return;
    }
    let decoded;
    try {
      decoded = decodeHeader(bytes);
    } catch (err) {
      throw new WireError('ERR_WIRE_MALFORMED', `frame header does not decode: ${(err as Error).message}`);
    }
    if (!decoded) throw new WireError('ERR_WIRE_UNKNOWN_MESSAGE', 'frame header carries no message type this peer knows');
    if (decoded.kind === 'message') {
      this.state = { kind: 'length' };
      emit(decoded.message);
      return;
    }
    if (decoded.length > this.maxPayloadBytes) {
      throw new WireError('ERR_WIRE_PAYLOAD_SIZE', `piece ${decoded.index} of ${decoded.length} bytes exceeds the ${this.maxPayloadBytes} allowed`);
    }
    if (decoded.length === 0) {
      this.state = { kind: 'length' };
      emit({ type: 'piece', index: decoded.index, data: Buffer.alloc(0) });
      return;
    }
    this.state = { kind: 'payload', index: decoded.index, data: this.pool.take(decoded.length), filled: 0 };
  }
}

/** Encodes one message as the buffers to write: length + header in one, then the payload of a piece. */
export function encodeFrame(m: WireMessage, header: Uint8Array): Buffer[] {
  const frame = Buffer.allocUnsafe(4 + header.length);
  frame.writeUInt32BE(header.length, 0);
  frame.set(header, 4);
  return m.type === 'piece' ? [frame, m.data] : [frame];
}
