import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { KrillError } from '../errors.js';
import { PEER_ID_BYTES, WIRE_VERSION, type WireMessage } from '../wire/messages.js';
import { Wire } from '../wire/wire.js';
import type { Swarm } from './swarm.js';

/** Before the handshake names a blob, payloads up to the largest piece length of the policy are allowed. */
const MAX_PIECE_BYTES = 16 * 1024 * 1024;
/** A peer that does not complete its handshake within this is dropped (Kraken uses 5 s too). */
const HANDSHAKE_TIMEOUT_MS = 5000;
/** Where connections read (see connect, accept): one event loop, so one buffer serves them all. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

type Handshake = Extract<WireMessage, { type: 'handshake' }>;
type Entry = { swarm: Swarm; namespace: string };

/**
 * Creates a swarm on demand for a digest a dialer asked for and no swarm is registered for
 * (origins seed whatever they hold or can fetch). Undefined, or a rejection, means the blob is
 * not served here: the dialer is answered BLOB_UNKNOWN. The node registers the swarm it returns
 * under the handshake's namespace; it calls `resolve` at most once at a time per digest, and
 * dialers that arrive meanwhile wait for that one call.
 */
export type SwarmResolver = (digest: string, namespace: string) => Promise<Swarm | undefined>;

export interface PeerNodeOptions {
  /** Listen address; loopback unless told otherwise. */
  host?: string;
  /** Listen port; 0 picks a free one. */
  port?: number;
  resolve?: SwarmResolver;
}

/**
 * A process's peer endpoint: a TCP listener that accepts connections for the blobs it has
 * swarms for (or that `resolve` creates one for), and dials other peers. Each connection carries
 * one blob, named by the dialer's handshake. `violations` counts protocol violations (the
 * connections were closed). Events: `peer` (digest, peer key) when an accepted connection joins
 * a swarm, so an owner can tell a swarm is in use.
 */
export class PeerNode extends EventEmitter {
  readonly peerId = randomBytes(PEER_ID_BYTES);
  private readonly swarms = new Map<string, Entry>();
  private readonly resolving = new Map<string, Promise<Entry | undefined>>();
  violations = 0;
  /** Accepted connections that read into the shared buffer (see readIntoShared). */
  sharedReadsAccepted = 0;
  private closed = false;

  private constructor(private readonly server: Server, readonly port: number, readonly host: string, private readonly resolver?: SwarmResolver) {
    super();
  }

  static async start(o: PeerNodeOptions = {}): Promise<PeerNode> {
    // Paused, so that accept can point an accepted socket's reads elsewhere before the first one.
    const server = createServer({ pauseOnConnect: true });
    const host = o.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 0, host, () => resolve());
    });
    const node = new PeerNode(server, (server.address() as { port: number }).port, host, o.resolve);
    server.on('connection', (socket) => node.accept(socket));
    return node;
  }

  /** Serves and fetches `digest` through `swarm`, replacing any swarm registered for it. */
  register(digest: string, namespace: string, swarm: Swarm): void {
    this.swarms.set(digest, { swarm, namespace });
  }

  /**
   * Forgets the swarm of `digest`: new connections for it are refused (or resolved again). The
   * swarm itself and its connections are left to its owner to close. Unknown digests are ignored.
   */
  unregister(digest: string): void {
    this.swarms.delete(digest);
  }

  /** The swarm registered for `digest`, if any. */
  swarmOf(digest: string): Swarm | undefined {
    return this.swarms.get(digest)?.swarm;
  }

  /** Dials a peer for `digest` and adds the connection to its swarm once both handshakes are in. */
  async connect(host: string, port: number, digest: string, options: { origin?: boolean } = {}): Promise<void> {
    const entry = this.swarms.get(digest);
    if (!entry) throw new KrillError('NotFound', 'ERR_SWARM_NOT_FOUND', `no swarm for ${digest}`);
    // The socket reads into one buffer shared by all dialled connections, which each read hands
    // to the wire to copy what it keeps (a piece's bytes go into its pool buffer). A socket's own
    // reads are a new 64 KiB buffer each, garbage as soon as the wire has copied it; at link speed
    // that garbage waits for V8's next collection (tens of MB in the lab's 2 GB run).
    // The wire exists before the socket can read anything: reads come only after it connects.
    const socket = connect({
      host, port, noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n) => receiveShared(wire, n) },
    });
    const wire = this.wire(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    await wire.send(this.handshake(digest, entry.namespace, entry.swarm));
    const remote = await this.awaitHandshake(wire);
    if (remote.digest !== digest) {
      wire.close();
      throw new KrillError('InvalidArgument', 'ERR_WIRE_HANDSHAKE', `peer answered for ${remote.digest}, not ${digest}`);
    }
    wire.setMaxPayload(entry.swarm.file.metainfo.pieceLength);
    entry.swarm.add(remote.peerId.toString('hex'), wire, remote, options.origin ?? false, true);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const { swarm } of this.swarms.values()) swarm.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private wire(socket: Socket): Wire {
    return new Wire(socket, { maxPayloadBytes: MAX_PIECE_BYTES, onViolation: () => { this.violations++; } });
  }

  private handshake(digest: string, namespace: string, swarm: Swarm): Handshake {
    const f = swarm.file;
    return { type: 'handshake', version: WIRE_VERSION, peerId: this.peerId, digest, namespace, bitfield: f.bitfield(), pieceCount: f.pieceCount };
  }

  private awaitHandshake(wire: Wire): Promise<Handshake> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { wire.close(); reject(new KrillError('Unavailable', 'ERR_WIRE_HANDSHAKE', 'no handshake in time')); }, HANDSHAKE_TIMEOUT_MS);
      const onMessage = (m: WireMessage) => {
        clearTimeout(timer);
        wire.off('close', onClose);
        if (m.type === 'handshake') resolve(m);
        else reject(new KrillError('Unavailable', 'ERR_WIRE_HANDSHAKE', m.type === 'error' ? m.message : `expected a handshake, got ${m.type}`));
      };
      const onClose = () => {
        clearTimeout(timer);
        reject(new KrillError('Unavailable', 'ERR_WIRE_HANDSHAKE', wire.violation?.message ?? 'connection closed before the handshake'));
      };
      wire.once('message', onMessage);
      wire.once('close', onClose);
    });
  }

  /** The registered swarm for a handshake, or one `resolve` creates; undefined when none. */
  private async lookup(digest: string, namespace: string): Promise<Entry | undefined> {
    const known = this.swarms.get(digest);
    if (known || !this.resolver) return known;
    let pending = this.resolving.get(digest);
    if (!pending) {
      const resolver = this.resolver;
      pending = (async () => {
        const swarm = await resolver(digest, namespace).catch(() => undefined);
        if (!swarm) return undefined;
        // Resolved after close(): nobody would close this swarm later.
        if (this.closed) return void swarm.close();
        const entry = { swarm, namespace };
        this.swarms.set(digest, entry);
        return entry;
      })().finally(() => this.resolving.delete(digest));
      this.resolving.set(digest, pending);
    }
    return pending;
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const wire = this.wire(socket);
    if (readIntoShared(socket, (n) => receiveShared(wire, n))) this.sharedReadsAccepted++;
    socket.resume();
    this.awaitHandshake(wire).then(async (remote) => {
      const entry = await this.lookup(remote.digest, remote.namespace);
      // The dialer may have given up while the swarm was being resolved.
      if (wire.isClosed) return;
      if (!entry || remote.pieceCount !== entry.swarm.file.pieceCount) {
        await wire.send({ type: 'error', code: 'BLOB_UNKNOWN', message: `${remote.digest} is not served here`, index: 0 }).catch(() => undefined);
        return wire.close();
      }
      wire.setMaxPayload(entry.swarm.file.metainfo.pieceLength);
      // Queued before anything the swarm sends; the swarm listens from here on.
      void wire.send(this.handshake(remote.digest, entry.namespace, entry.swarm)).catch(() => undefined);
      const key = remote.peerId.toString('hex');
      entry.swarm.add(key, wire, remote);
      this.emit('peer', remote.digest, key);
    }, () => wire.close());
  }
}

/** A read of `n` bytes into READ_BUFFER, handed to the wire (which copies what it keeps); true: keep reading. */
function receiveShared(wire: Wire, n: number): boolean {
  wire.receive(READ_BUFFER.subarray(0, n));
  return true;
}

/**
 * Points an accepted, paused socket's reads into READ_BUFFER, as `onread` does for a dialled one
 * (see connect): half of an agent's connections are accepted, and each of their reads was a new
 * 64 KiB buffer, zero-filled, garbage once the wire had copied it. net.Server takes no `onread`,
 * so this sets up what net.Socket's constructor does with one: the socket's kBuffer, kBufferCb
 * and kBufferGen (own properties, found by their symbols' descriptions) and the handle's
 * useUserBuffer. These are Node's internals (Node 20's lib/net.js); where they are not found the
 * socket keeps its own reads, and false says so (peer-node.test.ts checks it is true here).
 */
function readIntoShared(socket: Socket, onRead: (n: number) => boolean): boolean {
  const symbols = new Map(Object.getOwnPropertySymbols(socket).map((k) => [k.description, k]));
  const kBuffer = symbols.get('kBuffer');
  const kBufferCb = symbols.get('kBufferCb');
  const kBufferGen = symbols.get('kBufferGen');
  const internals = socket as unknown as Record<symbol, unknown> & { _handle?: { useUserBuffer?: (buf: Uint8Array) => void } };
  const handle = internals._handle;
  if (!kBuffer || !kBufferCb || !kBufferGen || internals[kBuffer] !== null || typeof handle?.useUserBuffer !== 'function') return false;
  internals[kBuffer] = READ_BUFFER;
  internals[kBufferCb] = onRead;
  internals[kBufferGen] = null;
  handle.useUserBuffer(READ_BUFFER);
  return true;
}
