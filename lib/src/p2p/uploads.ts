import type { Wire } from '../wire/wire.js';
import { piecePool } from '../wire/buffer-pool.js';
import type { PieceFile } from './piece-file.js';

/**
 * Pieces being sent at once per swarm by an uploader that is not a seeder: enough to keep a link
 * busy (each send waits until the socket drains, and the kernel buffers more), few enough that
 * the order of the queue decides.
 */
const SENDS_AT_ONCE = 4;
/**
 * A seeder sends one piece at a time to each peer, to as many peers at once as fit in this many
 * bytes of pieces (each held in memory until its socket takes it): 32 of 1 MiB, 8 of 4 MiB. Its
 * link is the one every agent shares, while each agent's downlink is shared with its other
 * peers: a send to a congested agent waits for that agent's socket to drain. With four sends at
 * once, a handful of such waits left the origin's link idle for up to 0.6 s at a time while
 * other agents had requests queued (in the lab it averaged 21 of 24 MB/s); one send per peer
 * keeps it full.
 */
const SEEDER_SEND_BYTES = 32 * 1024 * 1024;
/**
 * A queued request is passed over by at most this many others, then served before any fresher
 * one: the order below (pieces sent least first) otherwise kept a request for a piece sent often
 * waiting while requests for fresher pieces kept coming (1.4 s in the lab, 7 s once requests
 * arrived faster), and its asker's pipeline slot with it.
 */
const MAX_PASSED_OVER = 8;

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
  /**
   * This side will hold every piece: an origin, also while its blob is still arriving from the
   * backend. It super-seeds (see Uploads). A complete file makes any uploader a seeder.
   */
  seeder?: boolean;
}

/**
 * The serving half of a swarm. Requests are queued and served a few at a time, pieces sent least
 * often first, and of those to the peer served least: a seeder whose link all peers share sends
 * every piece once before it sends any twice, so the swarm gets the whole blob from it as early
 * as its link allows and spreads the copies itself.
 *
 * A seeder goes further (BitTorrent calls it super-seeding): asked for a piece it has already
 * sent, it sends instead one it holds and never sent that the asker lacks and nobody asked for,
 * the first such after the one asked for; with none left, it declines, once per peer and piece,
 * while another connected peer holds the piece or was sent it, telling the asker to get it from a
 * peer. A second request for the same piece is served: the asker could not get it elsewhere (the
 * holder left, or was blacklisted by the asker). Without this an origin's link, the one every
 * agent shares, carried 1.4 copies of a blob in the lab, and it is the link that decides when the
 * last agent finishes. While it still has pieces never sent, whatever it is asked for it sends
 * one of those, so all it chooses is whom to serve: the peer served least, which spreads the
 * first copies evenly (served first come, first served, agents got 8 to 27 of 191 pieces from
 * the origin, and the ones with most could not pass all of them on in time).
 */
export class Uploads {
  private queue: Array<{ peer: UploadPeer; index: number; passed: number }> = [];
  private readonly sentCount: Uint32Array;
  /** The peer each piece was last sent to. */
  private readonly sentTo: Array<UploadPeer | undefined>;
  /** Pieces sent to each connected peer. */
  private readonly servedTo = new Map<UploadPeer, number>();
  /** Pieces never sent. */
  private unsent: number;
  /** Peers a seeder is sending a piece to now. */
  private readonly busy = new Set<UploadPeer>();
  private sending = 0;
  /** Senders waiting for egress budget, that have not chosen yet. */
  private waiting = 0;
  /** Bytes of pieces served to others. */
  served = 0;
  /** Requests declined because another peer holds the piece. */
  declinedCount = 0;

  constructor(private readonly o: UploadsOptions) {
    this.sentCount = new Uint32Array(o.file.pieceCount);
    this.sentTo = new Array<UploadPeer | undefined>(o.file.pieceCount);
    this.unsent = o.file.pieceCount;
    this.seederSends = Math.max(2, Math.floor(SEEDER_SEND_BYTES / o.file.metainfo.pieceLength));
  }

  /** Sends at once for a seeder: see SEEDER_SEND_BYTES. */
  private readonly seederSends: number;

  private get seeding(): boolean {
    return this.o.seeder === true || this.o.file.complete;
  }

  /** Whether a request is queued or a piece is being sent. */
  get busyServing(): boolean {
    return this.sending > 0 || this.queue.length > 0;
  }

  /** A peer asked for a piece. */
  request(peer: UploadPeer, index: number): void {
    if (index >= this.o.file.pieceCount || !this.o.file.has(index)) {
      return this.unavailable(peer, index, 'not here');
    }
    this.queue.push({ peer, index, passed: 0 });
    this.pump();
  }

  cancel(peer: UploadPeer, index: number): void {
    this.queue = this.queue.filter((q) => !(q.peer === peer && q.index === index));
  }

  /** A peer left: its requests go. */
  drop(peer: UploadPeer): void {
    this.queue = this.queue.filter((q) => q.peer !== peer);
    this.servedTo.delete(peer);
    for (let i = 0; i < this.sentTo.length; i++) if (this.sentTo[i] === peer) this.sentTo[i] = undefined;
  }

  /**
   * Senders as set out above, never more than there are requests they could answer; each first
   * waits for egress budget for a piece, and only then chooses what to send, so the choice is
   * made when the bytes can really leave.
   */
  private pump(): void {
    const seeding = this.seeding;
    for (;;) {
      const answerable = seeding ? this.readyPeers() : this.queue.length;
      if (this.sending >= (seeding ? this.seederSends : SENDS_AT_ONCE) || this.waiting >= answerable) return;
      this.sending++;
      this.waiting++;
      this.sendNext().catch((err: unknown) => this.o.onWarning(err)).finally(() => {
        this.sending--;
        this.pump();
      });
    }
  }

  /** Peers with a request queued and no piece being sent to them. */
  private readyPeers(): number {
    const ready = new Set<UploadPeer>();
    for (const q of this.queue) if (!this.busy.has(q.peer) && !q.peer.wire.isClosed) ready.add(q.peer);
    return ready.size;
  }

  private async sendNext(): Promise<void> {
    try {
      await this.o.egress?.take(this.o.file.metainfo.pieceLength);
    } finally {
      this.waiting--;
    }
    const entry = this.choose();
    if (!entry) return;
    const { peer, index, substitute } = entry;
    if (this.sentCount[index]++ === 0) this.unsent--;
    this.sentTo[index] = peer;
    this.servedTo.set(peer, (this.servedTo.get(peer) ?? 0) + 1);
    if (substitute !== undefined) this.unavailable(peer, substitute, 'ask a peer');
    this.busy.add(peer);
    try {
      const data = await this.o.file.read(index, piecePool);
      // The buffer goes back to the pool once the socket has taken its bytes, not before.
      await peer.wire.send({ type: 'piece', index, data }, (ok) => { if (ok) piecePool.give(data); })
        .then(() => { this.served += data.length; }, () => undefined);
    } finally {
      this.busy.delete(peer);
    }
  }

  /** The next request to answer with a piece, substituted or declined as above. */
  private choose(): { peer: UploadPeer; index: number; substitute?: number } | undefined {
    const seeding = this.seeding;
    // A seeder with pieces never sent will send one of those whatever was asked (as a rule).
    const fresh = seeding && this.unsent > 0;
    for (;;) {
      this.queue = this.queue.filter((q) => !q.peer.wire.isClosed && !q.peer.has[q.index]);
      let best = -1;
      let bestKey = Infinity;
      let overdue = -1;
      for (let i = 0; i < this.queue.length; i++) {
        const q = this.queue[i]!;
        if (seeding && this.busy.has(q.peer)) continue;
        if (overdue < 0 && q.passed >= MAX_PASSED_OVER) overdue = i;
        // Counted as passed over by this choice; the one chosen leaves the queue.
        q.passed++;
        const key = (fresh ? 0 : this.sentCount[q.index]! * 2 ** 32) + (this.servedTo.get(q.peer) ?? 0);
        if (key < bestKey) {
          best = i;
          bestKey = key;
        }
      }
      if (best < 0) return undefined;
      // The oldest overdue request first.
      const { peer, index } = this.queue.splice(overdue >= 0 ? overdue : best, 1)[0]!;
      if (this.sentCount[index] === 0 || !seeding) return { peer, index };
      const substitute = this.unsentAfter(peer, index);
      if (substitute !== undefined) return { peer, index: substitute, substitute: index };
      if (!this.decline(peer, index)) return { peer, index };
    }
  }

  /** The first piece after `index` (round the end) held here, never sent, lacked by `peer` and not asked for. */
  private unsentAfter(peer: UploadPeer, index: number): number | undefined {
    if (this.unsent === 0) return undefined;
    const queued = new Set(this.queue.map((q) => q.index));
    const n = this.sentCount.length;
    for (let k = 1; k < n; k++) {
      const j = (index + k) % n;
      if (this.sentCount[j] === 0 && !peer.has[j] && !queued.has(j) && this.o.file.has(j)) return j;
    }
    return undefined;
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
