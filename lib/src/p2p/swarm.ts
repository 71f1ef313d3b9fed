import { EventEmitter } from 'node:events';
import { KrillError } from '../errors.js';
import type { Wire } from '../wire/wire.js';
import type { WireMessage } from '../wire/messages.js';
import { piecePool } from '../wire/buffer-pool.js';
import type { PieceFile } from './piece-file.js';
import { BlobHasher } from './blob-hasher.js';
import { PiecePicker } from './piece-picker.js';
import { Uploads, type Pacer, type UploadPeer } from './uploads.js';

export type { Pacer } from './uploads.js';

const DEFAULT_INFLIGHT_BYTES = 48 * 1024 * 1024;
/**
 * Requests outstanding at an origin per agent, at most. An origin's link is shared by every agent
 * and it answers in its own order (least-sent first), so a deeper queue there only lets requests
 * for pieces that peers will have soon wait and go out as second copies; two keep its link busy
 * across a round trip. (Measured in the lab: 4 agents at 5 MB/s, origin copies 1.4x -> 1.3x.)
 */
const ORIGIN_PIPELINE = 2;

/**
 * How long a peer that answered PIECE_UNAVAILABLE for a piece is not asked for it again (a seeder
 * declining says "ask a peer"): about the time a piece takes to spread to the peers that will
 * offer it. A seeder serves a repeated request, so a piece nobody else gives still arrives.
 */
const UNAVAILABLE_BACKOFF_MS = 2000;

export interface SwarmOptions {
  file: PieceFile;
  /** Requests outstanding per peer: enough to keep a link busy across one round trip. */
  pipeline?: number;
  /** A request unanswered this long is given up and asked of another peer. */
  requestTimeoutMs?: number;
  /** Pieces left at which endgame starts (duplicate requests). */
  endgameThreshold?: number;
  ingress?: Pacer;
  egress?: Pacer;
  /**
   * Connections to agents kept at most; one more is closed at once (connections to origins are
   * not counted, and always kept). About ten keep a link busy while spreading pieces (Kraken and
   * BitTorrent clients use a similar number); unlimited by default.
   */
  maxPeers?: number;
  /**
   * Connections this side dialled to agents that are kept beyond maxPeers, while fewer than this
   * many are open: each agent then has some peers of its own choosing, not only those that
   * dialled it first (agents that announce first otherwise fill up with the next ones, and the
   * last ones, refused, connect only among themselves). 0 by default.
   */
  dialledReserve?: number;
  /**
   * Bytes requested and not yet received, over all peers, at most: every answer is held in memory
   * until it is verified and written, so this bounds a download's memory whatever the piece
   * length and peer count (default 48 MiB: 48 pieces of 1 MiB, two seconds of a 25 MB/s link).
   */
  maxInflightBytes?: number;
  /** The file is complete and its whole digest already checked (a seeder's stored blob). */
  verified?: boolean;
  /** This side will hold every piece (an origin): it super-seeds, see Uploads. */
  seeder?: boolean;
}

interface Peer extends UploadPeer {
  key: string;
  asked: Map<number, number>;
  /** Pieces the peer answered PIECE_UNAVAILABLE for, and when. */
  unavailable: Map<number, number>;
  bytesIn: number;
  /** This side dialled the connection. */
  dialled: boolean;
}

/**
 * One blob's swarm: the connections to peers holding or wanting it, and the choice of which
 * piece to ask of whom. All state changes happen in this object's handlers, on one event loop.
 * Events: `complete` (after the whole blob verified against its digest), `blacklist` (peer key,
 * reason), `corrupt` (peer key).
 */
export class Swarm extends EventEmitter {
  private readonly peers = new Map<string, Peer>();
  private readonly picker: PiecePicker;
  private readonly pipeline: number;
  /** Requests outstanding over all peers at most (see maxInflightBytes). */
  private readonly maxOutstanding: number;
  private readonly timeoutMs: number;
  private readonly timer: NodeJS.Timeout;
  readonly blacklist = new Set<string>();
  /** Pieces received and being verified and written. */
  private readonly writing = new Set<number>();
  private readonly uploads: Uploads;
  /** Bytes received from peers, by whether the peer is an origin. */
  readonly received = { origin: 0, peer: 0 };
  /** Bytes of pieces that arrived but were not needed (cancelled, or duplicates that lost a race). */
  readonly discarded = { origin: 0, peer: 0 };
  private verified = false;
  private closed = false;
  /** The whole blob's digest, computed as the pieces arrive (absent for a verified seeder). */
  private hasher: BlobHasher | undefined;
  /** Settled by verify (Node 20 has no Promise.withResolvers). */
  private readonly whole = (() => {
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  })();

  constructor(private readonly o: SwarmOptions) {
    super();
    this.uploads = new Uploads({
      file: o.file, ...(o.egress ? { egress: o.egress } : {}), peers: () => this.peers.values(),
      onWarning: (err) => { if (!this.closed) this.emit('warning', err); }, ...(o.seeder ? { seeder: true } : {}),
    });
    this.picker = new PiecePicker(o.file.pieceCount, (i) => o.file.has(i), {
      endgameThreshold: o.endgameThreshold ?? 4, missing: () => o.file.pieceCount - o.file.presentCount,
    });
    this.pipeline = o.pipeline ?? 2;
    this.maxOutstanding = Math.max(1, Math.floor((o.maxInflightBytes ?? DEFAULT_INFLIGHT_BYTES) / o.file.metainfo.pieceLength));
    this.timeoutMs = o.requestTimeoutMs ?? 15_000;
    this.timer = setInterval(() => this.expire(), Math.max(50, this.timeoutMs / 2));
    this.timer.unref();
    // Nobody need wait for it: a rejection here is also emitted as an error or a warning.
    this.whole.promise.catch(() => undefined);
    // A seeder's file was verified when it was stored; hashing it again would read it all.
    if (o.verified && o.file.complete) {
      this.verified = true;
      this.whole.resolve();
    } else {
      this.hasher = new BlobHasher(o.file);
    }
    o.file.on('piece', (i: number, bytes?: Buffer) => {
      this.hasher?.stored(i, bytes);
      this.announce(i);
    });
    if (o.file.complete) this.verifySafely();
  }

  /**
   * Resolves once the whole blob has been verified against its digest (at once for a file
   * opened as verified); rejects when it hashed to another digest or could not be read back.
   */
  wholeVerified(): Promise<void> {
    return this.whole.promise;
  }

  get file(): PieceFile {
    return this.o.file;
  }

  /** Bytes of pieces served to others. */
  get served(): number {
    return this.uploads.served;
  }

  /** Whether a peer's request is queued or a piece is being sent to one. */
  get uploading(): boolean {
    return this.uploads.busyServing;
  }

  /** Requests a complete seeder declined because another peer holds the piece. */
  get declined(): number {
    return this.uploads.declinedCount;
  }

  /** Connections open now. */
  get peerCount(): number {
    return this.peers.size;
  }

  /** Connections open now to agents that this side dialled. */
  get dialledCount(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.dialled && !p.origin) n++;
    return n;
  }

  /** Connections open now to origins. */
  get originCount(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.origin) n++;
    return n;
  }

  /**
   * Whether one more connection is kept: to an origin always (origins come on top of the cap: an
   * agent whose slots other agents filled first must still reach the seeders; in the lab, 10 of
   * 20 agents once never did and took twice as long); to an agent while fewer than maxPeers are
   * open, or, dialled by this side, while fewer than dialledReserve dialled ones are. `pending`:
   * dials to agents under way, counted as if connected (for a caller deciding whether to dial).
   */
  hasRoom(origin: boolean, dialled: boolean, pending = 0): boolean {
    if (origin || this.o.maxPeers === undefined) return true;
    if (this.peers.size - this.originCount + pending < this.o.maxPeers) return true;
    return dialled && this.dialledCount + pending < (this.o.dialledReserve ?? 0);
  }

  /** Adds a connection whose handshake has been exchanged; `remote` is the peer's handshake. */
  add(key: string, wire: Wire, remote: Extract<WireMessage, { type: 'handshake' }>, origin = false, dialled = false): void {
    if (this.closed || this.blacklist.has(key) || this.peers.has(key)) return wire.close();
    if (!this.hasRoom(origin, dialled)) return wire.close();
    const has = new Uint8Array(this.o.file.pieceCount);
    for (let i = 0; i < has.length; i++) has[i] = (remote.bitfield[i >> 3]! >> (7 - (i & 7))) & 1;
    const peer: Peer = { key, wire, has, asked: new Map(), unavailable: new Map(), declined: new Set(), origin, dialled, bytesIn: 0 };
    this.peers.set(key, peer);
    this.picker.addPeer((i) => has[i] === 1, 1);
    wire.on('message', (m: WireMessage) => {
      this.onMessage(peer, m).catch((err: unknown) => this.failed(peer, err));
    });
    wire.once('close', () => this.drop(peer));
    this.fill(peer);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const p of this.peers.values()) p.wire.close();
  }

  /**
   * A handler failed (the piece file was closed under it, a disk error): after close() that is
   * expected and ignored; otherwise the peer is dropped and `warning` emitted.
   */
  private failed(peer: Peer, err: unknown): void {
    if (this.closed) return;
    this.emit('warning', err);
    peer.wire.close();
  }

  private async onMessage(peer: Peer, m: WireMessage): Promise<void> {
    switch (m.type) {
      case 'request':
        return this.uploads.request(peer, m.index);
      case 'piece':
        return this.receive(peer, m.index, m.data);
      case 'have':
        if (m.index < peer.has.length && !peer.has[m.index]) {
          peer.has[m.index] = 1;
          this.picker.addHave(m.index);
          if (!peer.origin) this.preferPeer(m.index);
        }
        return this.fill(peer);
      case 'complete':
        for (let i = 0; i < peer.has.length; i++) if (!peer.has[i]) { peer.has[i] = 1; this.picker.addHave(i); }
        // Now a seeder, it chooses what to send by what its peers hold (see Uploads): it is told
        // again of every piece here, those it was not told of while it held them too among them.
        for (let i = 0; i < peer.has.length; i++) if (this.o.file.has(i)) void peer.wire.send({ type: 'have', index: i }).catch(() => undefined);
        return this.fill(peer);
      case 'error':
        if (m.code === 'PIECE_UNAVAILABLE') {
          peer.unavailable.set(m.index, Date.now());
          // Asked again when the backoff ends, even if nothing else happens by then.
          setTimeout(() => this.fill(peer), UNAVAILABLE_BACKOFF_MS + 10).unref();
        }
        if (peer.asked.delete(m.index)) this.picker.settled(m.index);
        return this.fillAll();
      case 'cancel':
        return this.uploads.cancel(peer, m.index);
      default:
        return undefined;
    }
  }

  /**
   * A peer now has a piece that is asked only of origins: the origin request is withdrawn so the
   * piece can come from the peer instead. An origin's link is the one every agent shares; what a
   * peer can give should not take its time (with this, origins send about one copy of a blob).
   */
  private preferPeer(index: number): void {
    for (const p of this.peers.values()) {
      if (!p.asked.has(index)) continue;
      if (!p.origin) return;
    }
    for (const p of this.peers.values()) {
      if (p.origin && p.asked.delete(index)) {
        this.picker.settled(index);
        void p.wire.send({ type: 'cancel', index }).catch(() => undefined);
        this.fill(p);
      }
    }
  }

  /** A received piece's buffer came from the wire's pool; it goes back once written or dropped. */
  private async receive(peer: Peer, index: number, data: Buffer): Promise<void> {
    try {
      await this.accept(peer, index, data);
    } finally {
      piecePool.give(data);
    }
  }

  private async accept(peer: Peer, index: number, data: Buffer): Promise<void> {
    const asked = peer.asked.delete(index);
    // A seeder (an origin, or an agent that has the whole blob) may send a piece it was not asked
    // for in place of one it had sent before (see Uploads); it is taken if still needed, and
    // verified like any other. (Taken from origins only, the pieces a complete agent sent in
    // place of others were thrown away here, and the asker told to look elsewhere.)
    const offered = !asked && index < this.o.file.pieceCount && !this.o.file.has(index) && !this.writing.has(index);
    if (!asked && !offered) {
      this.discarded[peer.origin ? 'origin' : 'peer'] += data.length;
      return;
    }
    if (offered) this.picker.requested(index);
    // The piece stays "requested" in the picker, and is never picked, until it is written: while
    // the write (and its sync) is under way the file does not have it yet, and picking it again
    // then (from any peer, this one included in endgame) doubled what the sources sent.
    this.writing.add(index);
    try {
      await this.o.ingress?.take(data.length);
      // Only new pieces count: an endgame duplicate that lost the race is not a useful byte.
      if (await this.o.file.write(index, data)) {
        peer.bytesIn += data.length;
        this.received[peer.origin ? 'origin' : 'peer'] += data.length;
      } else {
        this.discarded[peer.origin ? 'origin' : 'peer'] += data.length;
      }
    } catch (err) {
      // A full disk ends the download with that error; waiting for peers would not help.
      if ((err as KrillError).code === 'ERR_STORE_FULL') return void this.emit('error', err);
      if ((err as KrillError).code !== 'ERR_PIECE_CORRUPT') throw err;
      this.emit('corrupt', peer.key);
      this.ban(peer, `sent a corrupt piece ${index}`);
      return;
    } finally {
      this.writing.delete(index);
      this.picker.settled(index);
    }
    // The shared cap may have held other peers back; they get their turn too.
    this.fill(peer);
    this.fillAll();
  }

  /**
   * Tells every peer that lacks a new piece about it, and cancels duplicate endgame requests for
   * it. A peer that holds it already is not told (while pieces spread, that is about half of all
   * HAVEs, each a message to write and read, the cost that grows with the piece count), except an
   * origin: a seeder chooses what to send by what its peers hold.
   */
  private announce(index: number): void {
    for (const p of this.peers.values()) {
      if (p.asked.delete(index)) {
        this.picker.settled(index);
        void p.wire.send({ type: 'cancel', index }).catch(() => undefined);
      }
      if (!p.has[index] || p.origin) void p.wire.send({ type: 'have', index }).catch(() => undefined);
    }
    if (this.o.file.complete) this.verifySafely();
    else this.fillAll();
  }

  private fill(peer: Peer): void {
    if (peer.wire.isClosed || this.o.file.complete) return;
    let outstanding = 0;
    for (const p of this.peers.values()) outstanding += p.asked.size;
    const pipeline = peer.origin ? Math.min(this.pipeline, ORIGIN_PIPELINE) : this.pipeline;
    const from = this.startFor(peer);
    while (peer.asked.size < pipeline && outstanding++ < this.maxOutstanding) {
      const index = this.picker.pick((i) => peer.has[i] === 1, (i) => peer.asked.has(i) || this.writing.has(i) || this.backingOff(peer, i), from);
      if (index === undefined) return;
      peer.asked.set(index, Date.now());
      this.picker.requested(index);
      void peer.wire.send({ type: 'request', index }).catch(() => undefined);
    }
  }

  /**
   * Where ties start in the picker for requests to `peer`: piece 0 (pieces about in order, see
   * PiecePicker), except that with several origins each is asked from its own share of the blob
   * (by rank of peer id, the same in every agent), so that what one origin sends in place of a
   * piece already sent (super-seeding) is not what another is sending at the same moment.
   */
  private startFor(peer: Peer): number {
    if (!peer.origin) return 0;
    const origins: string[] = [];
    for (const p of this.peers.values()) if (p.origin) origins.push(p.key);
    if (origins.length < 2) return 0;
    origins.sort();
    return Math.floor((origins.indexOf(peer.key) * this.o.file.pieceCount) / origins.length);
  }

  private backingOff(peer: Peer, index: number): boolean {
    const at = peer.unavailable.get(index);
    if (at === undefined) return false;
    if (Date.now() - at < UNAVAILABLE_BACKOFF_MS) return true;
    peer.unavailable.delete(index);
    return false;
  }

  private fillAll(): void {
    for (const p of this.peers.values()) this.fill(p);
  }

  private expire(): void {
    const cutoff = Date.now() - this.timeoutMs;
    for (const p of this.peers.values()) {
      for (const [index, at] of p.asked) {
        if (at > cutoff) continue;
        p.asked.delete(index);
        this.picker.settled(index);
        void p.wire.send({ type: 'cancel', index }).catch(() => undefined);
      }
    }
    this.fillAll();
  }

  private ban(peer: Peer, reason: string): void {
    this.blacklist.add(peer.key);
    this.emit('blacklist', peer.key, reason);
    peer.wire.close();
  }

  private drop(peer: Peer): void {
    if (this.peers.get(peer.key) !== peer) return;
    this.peers.delete(peer.key);
    this.uploads.drop(peer);
    this.picker.addPeer((i) => peer.has[i] === 1, -1);
    for (const index of peer.asked.keys()) this.picker.settled(index);
    this.fillAll();
  }

  private verifySafely(): void {
    this.verify().catch((err: unknown) => {
      this.whole.reject(err as Error);
      if (!this.closed) this.emit('warning', err);
    });
  }

  /** The whole blob against its digest: only then is it complete. */
  private async verify(): Promise<void> {
    if (this.verified) return;
    this.verified = true;
    const digest = await this.hasher!.digest();
    if (digest !== this.o.file.metainfo.digest) {
      const err = new KrillError('Internal', 'ERR_BLOB_CORRUPT', `assembled blob hashes to ${digest}, not ${this.o.file.metainfo.digest}`);
      this.whole.reject(err);
      this.emit('error', err);
      return;
    }
    this.whole.resolve();
    this.o.file.forgetRecent();
    for (const p of this.peers.values()) void p.wire.send({ type: 'complete' }).catch(() => undefined);
    this.emit('complete');
  }
}
