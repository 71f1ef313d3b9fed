import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { isDigest } from '../digest.js';
import { FrameDecoder, WireError, encodeFrame } from './framing.js';
import { PEER_ID_BYTES, WIRE_VERSION, encodeHeader, type WireMessage } from './messages.js';

export interface WireOptions {
  /** Largest piece payload accepted before the handshake says otherwise; the blob's piece length after. */
  maxPayloadBytes: number;
  /** Called once per violation, before the connection is closed (for metrics). */
  onViolation?: (err: WireError) => void;
}

/**
 * One peer connection over any Duplex (a TCP socket, or an in-memory pair in tests). The first
 * message each way must be a handshake; a violation closes the connection and emits `violation`.
 * Events: `message` (WireMessage), `violation` (WireError), `close`. Messages that arrive while
 * no `message` listener is attached are kept, in order, for the next listener.
 */
export class Wire extends EventEmitter {
  private readonly decoder: FrameDecoder;
  private handshaken = false;
  private closed = false;
  /** Messages that arrived while nobody listened (e.g. between a handshake and its swarm). */
  private readonly backlog: WireMessage[] = [];
  /** Resolves at the stream's next drain (or close), while a send waits for one. */
  private drained: Promise<void> | undefined;
  violation: WireError | undefined;
  /** The stream is corked until the end of this turn of the event loop (see send). */
  private corked = false;

  constructor(private readonly stream: Duplex, private readonly options: WireOptions) {
    super();
    this.decoder = new FrameDecoder(options.maxPayloadBytes);
    stream.on('data', (chunk: Buffer) => this.receive(chunk));
    stream.on('end', () => {
      if (!this.decoder.idle) this.fail(new WireError('ERR_WIRE_TRUNCATED', 'connection ended in the middle of a frame'));
      else this.close();
    });
    stream.on('error', () => this.close());
    stream.on('close', () => this.close());
    this.on('newListener', (event: string) => {
      if (event === 'message' && this.backlog.length > 0) queueMicrotask(() => this.flush());
    });
  }

  private deliver(m: WireMessage): void {
    if (this.listenerCount('message') === 0 || this.backlog.length > 0) this.backlog.push(m);
    else this.emit('message', m);
  }

  private flush(): void {
    while (this.backlog.length > 0 && this.listenerCount('message') > 0) this.emit('message', this.backlog.shift()!);
  }

  /**
   * Sends a message; resolves when the stream can take more (backpressure), rejects once closed.
   * `written` is called once the stream is done with the message's bytes: `true` when they were
   * handed on (a piece's payload may then be reused), `false` when the write failed.
   */
  async send(m: WireMessage, written?: (ok: boolean) => void): Promise<void> {
    if (this.closed) throw new WireError('ERR_WIRE_CLOSED', 'connection is closed');
    const bufs = encodeFrame(m, encodeHeader(m));
    let ok = true;
    // Everything sent to the peer in one turn of the event loop leaves in one write (writev):
    // HAVEs, requests and cancels are a few bytes each, and on a loaded node each write to a
    // socket, and each packet, is the cost, not the bytes. A piece's header and payload then go
    // as one, too.
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      setImmediate(() => this.uncork());
    }
    for (let i = 0; i < bufs.length; i++) {
      ok = i === bufs.length - 1 && written ? this.stream.write(bufs[i], (err) => written(!err)) : this.stream.write(bufs[i]);
    }
    if (ok) return;
    // Every sender that meets a full buffer waits for the same drain: one pair of listeners per
    // connection, removed when either fires.
    this.drained ??= new Promise<void>((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        this.drained = undefined;
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
    });
    await this.drained;
  }

  /** Sets the largest piece payload accepted (the blob's piece length, once known). */
  setMaxPayload(bytes: number): void {
    this.decoder.maxPayloadBytes = bytes;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // What was sent before closing is handed to the socket first (an error saying why, say).
    this.uncork();
    this.stream.destroy();
    this.emit('close');
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.stream.uncork();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Bytes from the peer, for a stream that hands them over other than as `data` events (a socket
   * reading into one reused buffer: see PeerNode). Nothing is kept of `chunk` after the call.
   */
  receive(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.decoder.feed(chunk, (m) => {
        this.check(m);
        this.deliver(m);
      });
    } catch (err) {
      this.fail(err instanceof WireError ? err : new WireError('ERR_WIRE_MALFORMED', (err as Error).message));
    }
  }

  /** Rules the framing cannot see: handshake first and once, and a well-formed handshake. */
  private check(m: WireMessage): void {
    if (!this.handshaken) {
      if (m.type !== 'handshake') throw new WireError('ERR_WIRE_HANDSHAKE', `first message was ${m.type}, not a handshake`);
      if (m.version !== WIRE_VERSION) throw new WireError('ERR_WIRE_HANDSHAKE', `protocol version ${m.version} (this peer speaks ${WIRE_VERSION})`);
      if (m.peerId.length !== PEER_ID_BYTES) throw new WireError('ERR_WIRE_HANDSHAKE', `peer id of ${m.peerId.length} bytes (${PEER_ID_BYTES} expected)`);
      if (!isDigest(m.digest)) throw new WireError('ERR_WIRE_HANDSHAKE', `handshake digest ${JSON.stringify(m.digest)} is invalid`);
      if (m.bitfield.length !== Math.ceil(m.pieceCount / 8)) {
        throw new WireError('ERR_WIRE_HANDSHAKE', `bitfield of ${m.bitfield.length} bytes for ${m.pieceCount} pieces`);
      }
      this.handshaken = true;
      return;
    }
    if (m.type === 'handshake') throw new WireError('ERR_WIRE_HANDSHAKE', 'second handshake on one connection');
  }

  private fail(err: WireError): void {
    if (this.closed) return;
    this.violation = err;
    this.options.onViolation?.(err);
    this.emit('violation', err);
    this.close();
  }
}

/**
 * Two connected in-memory Duplex ends, for tests and for wiring peers without sockets. Each write
 * hands the other end a copy, so that, as with a socket, the writer may reuse its buffer once
 * the write's callback has run (a swarm gives piece buffers back to the pool then).
 */
export function duplexPair(): [Duplex, Duplex] {
  let a!: Duplex;
  let b!: Duplex;
  const make = (peer: () => Duplex) => new Duplex({
    read() {},
    write(chunk: Buffer, _enc, done) {
      peer().push(Buffer.from(chunk));
      done();
    },
    final(done) {
      peer().push(null);
      done();
    },
    destroy(err, done) {
      const p = peer();
      if (!p.destroyed) p.push(null);
      done(err);
    },
  });
  a = make(() => b);
  b = make(() => a);
  return [a, b];
}
