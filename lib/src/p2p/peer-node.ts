import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { KrillError } from '../errors.js';
import { PEER_ID_BYTES, WIRE_VERSION, type WireMessage } from '../wire/messages.js';
import { Wire } from '../wire/wire.js';
import type { Swarm } from './swarm.js';

/** Before the handshake names a blob, payloads up to the largest piece length of the policy are allowed. */
const MAX_PIECE_BYTES = 16 * 1024 * 1024;
/** A peer that does not complete its handshake within this is dropped (Kraken uses 5 s too). */
const HANDSHAKE_TIMEOUT_MS = 5000;

type Handshake = Extract<WireMessage, { type: 'handshake' }>;

/**
 * A process's peer endpoint: a TCP listener that accepts connections for the blobs it has
 * swarms for, and dials other peers. Each connection carries one blob, named by the dialer's
 * handshake. `violations` counts protocol violations (the connections were closed).
 */
export class PeerNode {
  readonly peerId = randomBytes(PEER_ID_BYTES);
  private readonly swarms = new Map<string, { swarm: Swarm; namespace: string }>();
  violations = 0;

  private constructor(private readonly server: Server, readonly port: number, readonly host: string) {}

  static async start(o: { host?: string; port?: number } = {}): Promise<PeerNode> {
    const server = createServer();
    const host = o.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 0, host, () => resolve());
    });
    const node = new PeerNode(server, (server.address() as { port: number }).port, host);
    server.on('connection', (socket) => node.accept(socket));
    return node;
  }

  /** Serves and fetches `digest` through `swarm`. */
  register(digest: string, namespace: string, swarm: Swarm): void {
    this.swarms.set(digest, { swarm, namespace });
  }

  /** Dials a peer for `digest` and adds the connection to its swarm once both handshakes are in. */
  async connect(host: string, port: number, digest: string, options: { origin?: boolean } = {}): Promise<void> {
    const entry = this.swarms.get(digest);
    if (!entry) throw new KrillError('NotFound', 'ERR_SWARM_NOT_FOUND', `no swarm for ${digest}`);
    const socket = connect({ host, port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const wire = this.wire(socket);
    await wire.send(this.handshake(digest, entry.namespace, entry.swarm));
    const remote = await this.awaitHandshake(wire);
    if (remote.digest !== digest) {
      wire.close();
      throw new KrillError('InvalidArgument', 'ERR_WIRE_HANDSHAKE', `peer answered for ${remote.digest}, not ${digest}`);
    }
    wire.setMaxPayload(entry.swarm.file.metainfo.pieceLength);
    entry.swarm.add(remote.peerId.toString('hex'), wire, remote, options.origin ?? false);
  }

  async close(): Promise<void> {
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

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const wire = this.wire(socket);
    this.awaitHandshake(wire).then(async (remote) => {
      const entry = this.swarms.get(remote.digest);
      if (!entry || remote.pieceCount !== entry.swarm.file.pieceCount) {
        await wire.send({ type: 'error', code: 'BLOB_UNKNOWN', message: `${remote.digest} is not served here`, index: 0 }).catch(() => undefined);
        return wire.close();
      }
      wire.setMaxPayload(entry.swarm.file.metainfo.pieceLength);
      // Queued before anything the swarm sends; the swarm listens from here on.
      void wire.send(this.handshake(remote.digest, entry.namespace, entry.swarm)).catch(() => undefined);
      entry.swarm.add(remote.peerId.toString('hex'), wire, remote);
    }, () => wire.close());
  }
}
