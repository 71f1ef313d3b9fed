import { piecePool } from '../wire/buffer-pool.js';

const MiB = 1024 * 1024;

/**
 * Bytes of recently written pieces kept in memory, by all the piece files of a process together
 * (see RecentPieces).
 */
export const RECENT_BYTES = 16 * MiB;

/**
 * Copies of recently written pieces are kept only for pieces of 1 MiB or smaller. A disk read
 * costs about the same whatever the piece's size, so it weighs most on small pieces; large pieces
 * belong to large blobs, whose downloads are the ones held to a memory bound (an agent
 * downloading 2 GB in 4 MiB pieces stays under 200 MB resident; 16 MiB held took it to 204 and
 * 218 MB).
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
 * written with O_DIRECT) and two thread-pool hand-offs. Buffers come from the piece pool and go
 * back to it.
 */
export class RecentPieces {
  /** In insertion order: the first is the oldest. */
  private readonly held = new Map<number, Buffer>();

  constructor(private readonly enabled: boolean, private readonly maxBytes = RECENT_BYTES) {}

  /** Keeps a copy of piece `index`, first dropping this file's oldest copies to make room. */
  keep(index: number, data: Buffer): void {
    if (!this.enabled || data.length > this.maxBytes || this.held.has(index)) return;
    for (const [i, buf] of this.held) {
      if (heldBytes + data.length <= this.maxBytes) break;
      this.drop(i, buf);
    }
    // Other files hold the budget: this one keeps nothing until they let go.
    if (heldBytes + data.length > this.maxBytes) return;
    const copy = piecePool.take(data.length);
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
    piecePool.give(buf);
  }
}
