import { KrillError } from '../errors.js';
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

type State = { kind: 'length' } | { kind: 'header'; length: number } | { kind: 'payload'; index: number; length: number };

/**
 * Turns a byte stream into messages: 4-byte big-endian header length, header, then for a piece
 * its raw payload. The state is explicit so a frame may arrive in any number of chunks. Throws
 * WireError (ERR_WIRE_HEADER_SIZE, ERR_WIRE_MALFORMED, ERR_WIRE_UNKNOWN_MESSAGE,
 * ERR_WIRE_PAYLOAD_SIZE) on the first violation; the decoder is unusable after that.
 */
export class FrameDecoder {
  private state: State = { kind: 'length' };
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** `maxPayloadBytes`: the largest piece accepted, the blob's piece length once it is known. */
  constructor(public maxPayloadBytes: number) {}

  /** True when no frame is partly received. */
  get idle(): boolean {
    return this.state.kind === 'length' && this.buffered === 0;
  }

  feed(chunk: Buffer, emit: (m: WireMessage) => void): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      const need = this.state.kind === 'length' ? 4 : this.state.length;
      if (this.buffered < need) return;
      const bytes = this.take(need);
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
    if (s.kind === 'payload') {
      this.state = { kind: 'length' };
      emit({ type: 'piece', index: s.index, data: bytes });
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
    this.state = { kind: 'payload', index: decoded.index, length: decoded.length };
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

/** Encodes one message as the buffers to write: length + header, then the payload of a piece. */
export function encodeFrame(m: WireMessage, header: Uint8Array): Buffer[] {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(header.length, 0);
  return m.type === 'piece' ? [len, Buffer.from(header), m.data] : [len, Buffer.from(header)];
}
