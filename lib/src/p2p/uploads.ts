import type { Wire } from '../wire/wire.js';
import { piecePool } from '../wire/buffer-pool.js';
import type { PieceFile } from './piece-file.js';

/**
 * Pieces being sent at once per swarm: enough to keep a link busy (each send waits until the
 * socket drains, and the kernel buffers more), few enough that the order of the queue decides.
 */
const SENDS_AT_ONCE = 4;

/** Something that paces bytes (a TokenBucket, or UNLIMITED). */
export interface Pacer {
  take(n: number): Promise<void>;
}

/** What the upload side needs to know of a connected peer. */
export interface UploadPeer {
  wire: Wire;
  /** The pieces the peer announced (bitfield and HAVEs). */
  has: Uint8Array;
  origin: boolean;
  /** Pieces this side declined to send the peer once (see Uploads.decline). */
  declined: Set<number>;
}

export interface UploadsOptions {
  file: PieceFile;
  egress?: Pacer;
  /** The peers connected now, to tell whether another one holds a piece. */
  peers: () => Iterable<UploadPeer>;
  /** A send failed (the swarm ignores it once closed). */
  onWarning: (err: unknown) => void;
}

/**
 * The serving half of a swarm. Requests are queued and served a few at a time, pieces sent least
 * often first: a seeder whose link all peers share sends every piece once before it sends any
 * twice, so the swarm gets the whole blob from it as early as its link allows and spreads the
 * copies itself.
 *
 * A complete seeder goes further (BitTorrent calls it super-seeding): asked for a piece it has
 * already sent, it sends instead one it never sent that the asker lacks and nobody asked for; with
 * none left, it declines, once per peer and piece, while another connected peer holds the piece
 * or was sent it, telling the asker to get it from a peer. A second request for the same piece
 * is served: the asker could not get it elsewhere (the holder left, or was blacklisted by the
 * asker). Without this an origin's link, the one every agent shares, carried 1.4 copies of a
 * blob in the lab, and it is the link that decides when the last agent finishes.
 */
export class Uploads {
  private queue: Array<{ peer: UploadPeer; index: number }> = [];
  private readonly sentCount: Uint32Array;
  /** The peer each piece was last sent to. */
  private readonly sentTo: Array<UploadPeer | undefined>;
  private sending = 0;
  /** Bytes of pieces served to others. */
  served = 0;
  /** Requests declined because another peer holds the piece. */
  declinedCount = 0;

  constructor(private readonly o: UploadsOptions) {
    this.sentCount = new Uint32Array(o.file.pieceCount);
    this.sentTo = new Array<UploadPeer | undefined>(o.file.pieceCount);
  }

  /** A peer asked for a piece. */
  request(peer: UploadPeer, index: number): void {
    if (index >= this.o.file.pieceCount || !this.o.file.has(index)) {
      return this.unavailable(peer, index, 'not here');
    }
    this.queue.push({ peer, index });
    this.pump();
  }

  cancel(peer: UploadPeer, index: number): void {
    this.queue = this.queue.filter((q) => !(q.peer === peer && q.index === index));
  }

  /** A peer left: its requests go. */
  drop(peer: UploadPeer): void {
    this.queue = this.queue.filter((q) => q.peer !== peer);
    for (let i = 0; i < this.sentTo.length; i++) if (this.sentTo[i] === peer) this.sentTo[i] = undefined;
  }

  /**
   * Up to SENDS_AT_ONCE senders; each first waits for egress budget for a piece, and only then
   * chooses what to send, so the choice is made when the bytes can really leave.
   */
  private pump(): void {
    while (this.sending < SENDS_AT_ONCE && this.queue.length > 0) {
      this.sending++;
      this.sendNext().catch((err: unknown) => this.o.onWarning(err)).finally(() => {
        this.sending--;
        this.pump();
      });
    }
  }

  private async sendNext(): Promise<void> {
    await this.o.egress?.take(this.o.file.metainfo.pieceLength);
    const entry = this.choose();
    if (!entry) return;
    const { peer, index, substitute } = entry;
    this.sentCount[index]!++;
    this.sentTo[index] = peer;
    if (substitute !== undefined) this.unavailable(peer, substitute, 'ask a peer');
    const data = await this.o.file.read(index, piecePool);
    // The buffer goes back to the pool once the socket has taken its bytes, not before.
    await peer.wire.send({ type: 'piece', index, data }, (ok) => { if (ok) piecePool.give(data); })
      .then(() => { this.served += data.length; }, () => undefined);
  }

  /** The next request to answer with a piece: least-sent first, substituted or declined as above. */
  private choose(): { peer: UploadPeer; index: number; substitute?: number } | undefined {
    for (;;) {
      this.queue = this.queue.filter((q) => !q.peer.wire.isClosed && !q.peer.has[q.index]);
      if (this.queue.length === 0) return undefined;
      let best = 0;
      for (let i = 1; i < this.queue.length; i++) {
        if (this.sentCount[this.queue[i]!.index]! < this.sentCount[this.queue[best]!.index]!) best = i;
      }
      const { peer, index } = this.queue.splice(best, 1)[0]!;
      if (this.sentCount[index] === 0 || !this.o.file.complete) return { peer, index };
      const queued = new Set(this.queue.map((q) => q.index));
      for (let j = 0; j < this.sentCount.length; j++) {
        if (this.sentCount[j] === 0 && !peer.has[j] && !queued.has(j)) return { peer, index: j, substitute: index };
      }
      if (!this.decline(peer, index)) return { peer, index };
    }
  }

  /** Declines `index` to `peer` if it may get it from another peer (once per peer and piece). */
  private decline(peer: UploadPeer, index: number): boolean {
    if (peer.declined.has(index)) return false;
    const last = this.sentTo[index];
    const sentElsewhere = last !== undefined && last !== peer && !last.wire.isClosed;
    if (!sentElsewhere && !this.heldElsewhere(peer, index)) return false;
    peer.declined.add(index);
    this.declinedCount++;
    this.unavailable(peer, index, 'ask a peer');
    return true;
  }

  /** Whether a connected agent other than `peer` announced piece `index`. */
  private heldElsewhere(peer: UploadPeer, index: number): boolean {
    for (const p of this.o.peers()) if (p !== peer && !p.origin && !p.wire.isClosed && p.has[index] === 1) return true;
    return false;
  }

  private unavailable(peer: UploadPeer, index: number, why: string): void {
    void peer.wire.send({ type: 'error', code: 'PIECE_UNAVAILABLE', message: `piece ${index}: ${why}`, index }).catch(() => undefined);
  }
}
