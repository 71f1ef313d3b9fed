/**
 * Chooses which piece to ask a peer for: the rarest among the pieces the peer has and we neither
 * have nor have asked for, so that copies of every piece spread through the swarm quickly. Ties go
 * to the piece nearest after this agent's own random starting point: agents that all start with
 * only an origin to ask then ask it for different pieces, instead of colliding on random ones
 * (each collision costs the origin's shared link a second copy). With few pieces left (endgame) a piece already asked of another peer may be asked
 * again, so the last pieces do not wait on the slowest peer. Pure bookkeeping: the scheduler's
 * event loop owns it.
 */
export class PiecePicker {
  /** How many connected peers hold each piece. */
  private readonly availability: Uint32Array;
  /** Outstanding requests per piece. */
  private readonly inflight: Uint16Array;

  constructor(
    readonly pieceCount: number,
    private readonly have: (index: number) => boolean,
    private readonly options: { endgameThreshold: number; random?: () => number },
  ) {
    this.availability = new Uint32Array(pieceCount);
    this.inflight = new Uint16Array(pieceCount);
    this.start = Math.floor((options.random ?? Math.random)() * pieceCount);
  }

  /** This picker's starting point for ties. */
  private readonly start: number;

  /** A peer's bitfield arrived (+1) or the peer left (-1). */
  addPeer(peerHas: (index: number) => boolean, delta: 1 | -1): void {
    for (let i = 0; i < this.pieceCount; i++) if (peerHas(i)) this.availability[i]! += delta;
  }

  /** A peer announced a piece. */
  addHave(index: number): void {
    this.availability[index]! += 1;
  }

  requested(index: number): void {
    this.inflight[index]! += 1;
  }

  /** A request ended: the piece arrived, failed, timed out or was cancelled. */
  settled(index: number): void {
    if (this.inflight[index]! > 0) this.inflight[index]! -= 1;
  }

  /** Pieces still missing. */
  missing(): number {
    let n = 0;
    for (let i = 0; i < this.pieceCount; i++) if (!this.have(i)) n++;
    return n;
  }

  /** The piece to request from a peer holding `peerHas`, or undefined if it has nothing useful. */
  pick(peerHas: (index: number) => boolean, alreadyAskedOfThisPeer: (index: number) => boolean): number | undefined {
    const endgame = this.missing() <= this.options.endgameThreshold;
    let best: number | undefined;
    let bestRarity = Infinity;
    for (let k = 0; k < this.pieceCount; k++) {
      const i = (this.start + k) % this.pieceCount;
      if (this.have(i) || !peerHas(i) || alreadyAskedOfThisPeer(i)) continue;
      if (this.inflight[i]! > 0 && !endgame) continue;
      // In endgame, prefer pieces with the fewest requests out, then the rarest.
      const rarity = (endgame ? this.inflight[i]! * 1e6 : 0) + this.availability[i]!;
      // Strictly rarer only: of equals, the first after the starting point wins.
      if (rarity < bestRarity) {
        best = i;
        bestRarity = rarity;
      }
    }
    return best;
  }
}
