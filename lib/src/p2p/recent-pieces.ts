const MiB = 1024 * 1024;

/**
 * Bytes of recently written pieces kept in memory, by all the piece files of a process together
 * (see RecentPieces): 16 pieces of 512 KiB. 16 MiB did a little better in the lab (10-host p99
 * 9.6-10.0 s against 9.9-10.7 s), but an agent that had fetched a blob in small pieces then
 * peaked at 200-207 MB resident downloading 2 GB; with 8 MiB, 187-192 MB.
 */
export const RECENT_BYTES = 8 * MiB;

/**
 * Copies of recently written pieces are kept only for pieces of 1 MiB or smaller. A disk read
 * costs about the same whatever the piece's size, so it weighs most on small pieces; large pieces
 * belong to large blobs, whose downloads are the ones held to a memory bound (an agent
 * downloading 2 GB in 4 MiB pieces stays under 200 MB resident).
 */
export function keepsRecent(pieceLength: number): boolean {
  return pieceLength <= MiB;
}

/** Bytes held now by every RecentPieces of this process. */
let heldBytes = 0;

/**
 * Copies of the pieces a file had written last, oldest dropped first, within a budget shared by
 * every file of the process (RECENT_BYTES: concurrent downloads share it, and whichever writes
 * keeps). A piece is read back mostly soon after it is written: peers ask first for the pieces
 * fewest hold, the newest, and the whole-blob hash takes a piece that came ahead of its turn once
 * the pieces before it are in (with pieces arriving from many peers at once, 90% of them did in
 * the lab). Served from here, such a read is a copy in memory instead of a disk read (pieces are
 * written with O_DIRECT) and two thread-pool hand-offs.
 *
 * The copies are plain buffers, not the piece pool's: the pool keeps idle buffers for reuse, and a
 * slab of its memory stays resident while any buffer cut from it does, so copies taken from it
 * for one download stayed resident after it (after a 100 MB blob in 512 KiB pieces, an agent then
 * downloading 2 GB peaked at 221 MB resident instead of under 200). A copy dropped to make room
 * is reused for the next one; on clear() they all go to the garbage collector.
 */
export class RecentPieces {
  /** In insertion order: the first is the oldest. */
  private readonly held = new Map<number, Buffer>();

  constructor(private readonly enabled: boolean, private readonly maxBytes = RECENT_BYTES) {}

  /** Keeps a copy of piece `index`, first dropping this file's oldest copies to make room. */
  keep(index: number, data: Buffer): void {
    if (!this.enabled || data.length > this.maxBytes || this.held.has(index)) return;
    let spare: Buffer | undefined;
    for (const [i, buf] of this.held) {
      if (heldBytes + data.length <= this.maxBytes) break;
      this.drop(i, buf);
      spare = buf;
    }
    // Other files hold the budget: this one keeps nothing until they let go.
    if (heldBytes + data.length > this.maxBytes) return;
    const copy = spare?.length === data.length ? spare : Buffer.allocUnsafeSlow(data.length);
    data.copy(copy);
    this.held.set(index, copy);
    heldBytes += copy.length;
  }

  /** Copies piece `index` into `out` and returns true if it is held; false if not. */
  copyTo(index: number, out: Buffer): boolean {
    const buf = this.held.get(index);
    if (!buf || buf.length !== out.length) return false;
    buf.copy(out);
    return true;
  }

  /** Lets go of every copy (the file is closing, or its blob is verified and only seeds now). */
  clear(): void {
    for (const [i, buf] of this.held) this.drop(i, buf);
  }

  private drop(index: number, buf: Buffer): void {
    this.held.delete(index);
    heldBytes -= buf.length;
  }
}
